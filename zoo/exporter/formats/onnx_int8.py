"""onnx-int8: static QDQ quantisation with onnxruntime.quantization, calibrated on the run's training images.

Convolutions and matrix products are quantised (weights per channel, activations from min/max seen
on the calibration images); the rest stays float, so an embedded preprocessing graph is untouched.
Its parity gate is top-1 agreement with eager fp32 >= 0.99 (differences of probabilities are reported).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.errors import ExportError
from zoo.exporter.formats import ExportFormat, ExportOptions, LoadedExport, temp_path
from zoo.exporter.formats.onnx import load_onnx, write_onnx
from zoo.runs import CheckpointMeta

log = logging.getLogger("zoo.export")
CALIBRATION_BATCH = 8


class OnnxInt8Format(ExportFormat):
    name = "onnx-int8"
    file_name = "model-int8.onnx"
    description = "ONNX with static int8 quantisation (QDQ), calibrated on training images"
    requires = ("onnx", "onnxruntime")
    gate = "top1"

    def path_in(self, folder: Path, options: ExportOptions) -> Path:
        return folder / ("model-int8-uint8.onnx" if options.embed_preprocessing else self.file_name)

    def export(self, model, path: Path, example, meta: CheckpointMeta, options: ExportOptions) -> dict[str, Any]:
        import onnx
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

        from zoo.exporter.metadata import metadata_props

        if options.opset < 13:
            raise ExportError(f"--opset {options.opset}: int8 with per-channel weights needs ONNX opset 13 or newer; "
                              "use --opset 13 (or leave onnx-int8 out)")
        if options.calibration is None or not len(options.calibration):
            raise ExportError("onnx-int8 needs calibration images: the run's training split, or pass --images DIR")
        with tempfile.TemporaryDirectory() as work:
            float_model = Path(work) / "float.onnx"
            info = write_onnx(model, float_model, example, meta, options)
            prepared = _preprocessed(float_model, Path(work) / "prepared.onnx")
            name = info["input"]
            batches = _calibration_batches(options)

            class Reader(CalibrationDataReader):
                def __init__(self):
                    self.items = iter(batches)

                def get_next(self):
                    batch = next(self.items, None)
                    return None if batch is None else {name: batch}

            with temp_path(path) as tmp:
                # reduce_range: 7-bit weights, so the u8 x s8 products cannot saturate on x86 CPUs without VNNI
                # (onnxruntime's quantization guide); the file gives the same answers on every CPU class
                quantize_static(str(prepared), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                                reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                op_types_to_quantize=["Conv", "Gemm", "MatMul"])
                proto = drop_unused_domains(onnx.load(str(tmp)))
                del proto.metadata_props[:]
                for key, value in metadata_props(meta, options.embed_preprocessing).items():
                    entry = proto.metadata_props.add()
                    entry.key, entry.value = key, value
                onnx.save(proto, str(tmp))
        return {**info, "quantization": "static QDQ, u8 activations x s8 weights per channel with reduce_range "
                "(7-bit weights: no saturation on x86 CPUs without VNNI, the same file on every CPU), min/max "
                "calibration",
                "calibration_images": sum(len(b) for b in batches)}

    def load(self, path: Path) -> LoadedExport:
        return load_onnx(path)

    def recognises(self, path: Path) -> bool:
        return False  # an .onnx file: the onnx format loads it


def drop_unused_domains(proto):
    """Keep only the opset domains the graph uses: onnxruntime's tools declare com.microsoft, ai.onnx.ml and
    others, and runtimes that do not know them (OpenCV DNN) refuse the file."""
    used = {"", "ai.onnx"} | {node.domain for node in proto.graph.node}
    for function in proto.functions:
        used |= {node.domain for node in function.node} | {function.domain}
    from onnx import helper

    keep = [o for o in proto.opset_import if o.domain in used]
    del proto.opset_import[:]
    proto.opset_import.extend(keep)
    proto.ir_version = helper.find_min_ir_version_for(keep, ignore_unknown=True)  # as the fp32 file: older runtimes
    return proto


def _preprocessed(source: Path, target: Path) -> Path:
    """onnxruntime's recommended pre-processing (shape inference, graph fusion); the model as is if it fails."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(source), str(target), skip_symbolic_shape=False)
        return target
    except Exception as exc:  # noqa: BLE001 - optional optimisation: quantise the plain graph instead
        log.info("int8 pre-processing skipped (%s)", type(exc).__name__)
        return source


def _calibration_batches(options: ExportOptions) -> list[np.ndarray]:
    data = options.calibration
    if options.embed_preprocessing:  # decoded images of their own sizes: one at a time
        return [np.ascontiguousarray(image)[None] for image in data]
    tensor = data if isinstance(data, torch.Tensor) else torch.as_tensor(np.asarray(data))
    size = CALIBRATION_BATCH if options.dynamic_batch else options.batch_size
    chunks = [tensor[i:i + size] for i in range(0, len(tensor), size)]
    return [c.numpy() for c in chunks if len(c) == size or options.dynamic_batch]
