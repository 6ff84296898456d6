"""Export formats as small backends behind one interface: export(model, path, example, meta)."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ExportError
from zoo.runs import CheckpointMeta

log = logging.getLogger("zoo.export")
FORMATS = ("onnx", "torchscript")
FILE_NAMES = {"onnx": "model.onnx", "torchscript": "model.pt"}
DEFAULT_OPSET = 18


def export_onnx(model, path: Path, example: torch.Tensor, meta: CheckpointMeta, opset: int = DEFAULT_OPSET,
                dynamic_batch: bool = True) -> dict[str, Any]:
    """torch.onnx (dynamo) first, the TorchScript-based exporter if that fails; checked and labelled."""
    import onnx

    tmp = _temp_beside(path)
    exporter, first_error = "dynamo", None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            batch = torch.export.Dim("batch", min=1, max=1024) if dynamic_batch else None
            torch.onnx.export(model, (example,), str(tmp), dynamo=True, opset_version=opset,
                              input_names=["input"], output_names=["logits"],
                              dynamic_shapes=({0: batch},) if dynamic_batch else None,
                              external_data=False, verbose=False)
    except Exception as exc:  # noqa: BLE001 - the dynamo exporter fails in many ways; fall back and say so
        first_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        log.warning("dynamo ONNX export failed (%s); using the TorchScript-based exporter", first_error)
        exporter = "torchscript"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (example,), str(tmp), dynamo=False, opset_version=min(opset, 17),
                                  input_names=["input"], output_names=["logits"],
                                  dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None)
        except Exception as exc2:
            tmp.unlink(missing_ok=True)
            raise ExportError(f"ONNX export of {meta.model} failed with both exporters: {exc2}") from exc2
    proto = onnx.load(str(tmp))
    for key, value in _metadata_strings(meta).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"exported ONNX model failed onnx.checker: {str(exc).splitlines()[0]}") from exc
    onnx.save(proto, str(tmp))
    os.replace(tmp, path)
    return {"exporter": exporter, "opset": proto.opset_import[0].version, "fallback_reason": first_error,
            "dynamic_batch": dynamic_batch}


def export_torchscript(model, path: Path, example: torch.Tensor, meta: CheckpointMeta, **_: Any) -> dict[str, Any]:
    """Traced in eval mode; metadata travels as the extra file zoo.json."""
    tmp = _temp_beside(path)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, example, check_trace=False)
        torch.jit.save(traced, str(tmp), _extra_files={"zoo.json": meta.to_json()})
    os.replace(tmp, path)
    return {"exporter": "torch.jit.trace"}


BACKENDS = {"onnx": export_onnx, "torchscript": export_torchscript}


def _metadata_strings(meta: CheckpointMeta) -> dict[str, str]:
    pre = meta.preprocessing
    return {
        "zoo.classes": json.dumps(meta.classes),
        "zoo.mean": json.dumps(list(pre.mean)),
        "zoo.std": json.dumps(list(pre.std)),
        "zoo.input_size": str(pre.input_size),
        "zoo.resize_size": str(pre.resize_size),
        "zoo.interpolation": pre.interpolation,
        "zoo.channel_order": pre.channel_order,
        "zoo.model": meta.model,
        "zoo.run": meta.run,
        "zoo.meta": meta.to_json(),
    }


def _temp_beside(path: Path) -> Path:
    from zoo.files import publish_mode

    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    publish_mode(name)
    return Path(name)
