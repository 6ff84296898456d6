"""An example zoo plugin: a tiny CNN and a synthetic 'shapes' dataset.

register_* receive a zoo.plugin.PluginContext: add_model, add_dataset, add_namespace, add_layout
(see its docstrings for every keyword). Give factories as "module:function" strings so that
`zoo list` does not import torch or your model code; metadata (input size, mean/std, classifier
attribute) travels with the name, and checkpoints and exports carry it.
"""

from zoo.plugin import PluginContext


def register_models(ctx: PluginContext) -> None:
    ctx.add_model(
        "example_tinynet",
        "zoo_example.models:tinynet",
        family="tinynet",
        description="a 3-conv example CNN from the zoo-example plugin",
        input_size=32,
        resize_size=32,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        classifier="fc",
        default_num_classes=3,
    )


def register_datasets(ctx: PluginContext) -> None:
    ctx.add_dataset(
        "example_shapes",
        "zoo_example.data:shapes",
        description="synthetic circles/squares/triangles, generated in memory (example plugin)",
        layout="in-memory",
        num_classes=3,
        embedded=True,
    )
    # A dataset of files: zoo finds a folder named "example-photos" under --data-root, $ZOO_DATA_ROOT or
    # ~/.cache/zoo/datasets and hands it to the factory as ``root`` (not embedded: it needs those files).
    ctx.add_dataset(
        "example_photos",
        "zoo_example.data:photos",
        description="a folder of photos in any layout zoo reads (example plugin)",
        folder_names=("example-photos",),
    )
