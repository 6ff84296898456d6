"""zoo-openvino: registers the `openvino` export format (zoo export --format openvino).

The template for a third-party export format: a class deriving zoo.exporter.formats.ExportFormat
(name, file name, description, what it needs, export, load, recognises), named as a string so that
registering imports neither OpenVINO nor torch.
"""

from zoo.plugin import PluginContext


def register(ctx: PluginContext) -> None:
    ctx.add_exporter("openvino", "zoo_openvino.format:OpenVinoFormat")
