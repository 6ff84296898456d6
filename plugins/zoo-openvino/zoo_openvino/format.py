"""OpenVINO IR: converted from the PyTorch model by openvino.convert_model, run by OpenVINO's CPU runtime
in fp32 (its default on CPUs with bf16 would not pass zoo's parity gate), metadata in the IR's rt_info."""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.exporter.formats import ExportFormat, ExportOptions, LoadedExport
from zoo.exporter.metadata import export_metadata
from zoo.runs import CheckpointMeta

META_KEY = ["zoo", "meta"]


class OpenVinoFormat(ExportFormat):
    name = "openvino"
    file_name = "model.xml"
    description = "OpenVINO IR (model.xml + model.bin), run by OpenVINO's CPU runtime"
    requires = ("openvino",)
    install_hint = "pip install openvino"

    def export(self, model, path: Path, example, meta: CheckpointMeta, options: ExportOptions) -> dict[str, Any]:
        import openvino as ov

        size = meta.preprocessing.input_size
        batch = -1 if options.dynamic_batch else options.batch_size
        with warnings.catch_warnings():  # convert_model traces with torch.jit, whose deprecation notice is not the user's
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.trace", category=FutureWarning)
            converted = ov.convert_model(model, example_input=example, input=[(batch, 3, size, size)])
        converted.set_rt_info(json.dumps(export_metadata(meta)), META_KEY)
        with tempfile.TemporaryDirectory(dir=path.parent) as work:  # both files complete before either is renamed
            staged = Path(work) / path.name
            ov.save_model(converted, str(staged), compress_to_fp16=False)
            os.replace(staged.with_suffix(".bin"), path.with_suffix(".bin"))
            os.replace(staged, path)
        return {"exporter": f"openvino.convert_model {ov.__version__}", "dynamic_batch": options.dynamic_batch,
                "weights_file": path.with_suffix(".bin").name}

    def load(self, path: Path) -> LoadedExport:
        import openvino as ov

        core = ov.Core()
        try:
            model = core.read_model(str(path))
            text = model.get_rt_info(META_KEY).astype(str)
        except Exception as exc:  # noqa: BLE001 - a damaged or foreign IR
            raise ZooError(f"{path} is not an OpenVINO IR written by zoo ({type(exc).__name__}); export it again") from exc
        meta = CheckpointMeta.from_dict(json.loads(text), f"metadata of {path}")
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        output = compiled.output(0)
        batch = model.inputs[0].get_partial_shape()[0]

        def run(images):
            return compiled(images.numpy() if hasattr(images, "numpy") else images)[output]

        return LoadedExport(run, meta, static_batch=None if batch.is_dynamic else batch.get_length())

    def recognises(self, path: Path) -> bool:
        return path.suffix == ".xml" and path.with_suffix(".bin").is_file()
