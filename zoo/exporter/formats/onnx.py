"""ONNX: torch.onnx's dynamo exporter (the TorchScript-based one as a named fallback), checked with
onnx.checker, labelled with the whole preprocessing, run by onnxruntime. With ``embed_preprocessing``
the graph takes decoded uint8 images of any size and preprocesses them itself."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ExportError, ZooError
from zoo.exporter.formats import ExportFormat, ExportOptions, LoadedExport, temp_path
from zoo.runs import CheckpointMeta

log = logging.getLogger("zoo.export")
DYNAMO_MIN_OPSET = 18


class OnnxFormat(ExportFormat):
    name = "onnx"
    file_name = "model.onnx"
    description = "ONNX (fp32), run by onnxruntime; --embed-preprocessing takes decoded uint8 images"
    requires = ("onnx", "onnxruntime")

    def path_in(self, folder: Path, options: ExportOptions) -> Path:
        return folder / ("model-uint8.onnx" if options.embed_preprocessing else self.file_name)

    def export(self, model, path: Path, example, meta: CheckpointMeta, options: ExportOptions) -> dict[str, Any]:
        with temp_path(path) as tmp:
            info = write_onnx(model, tmp, example, meta, options)
        return info

    def load(self, path: Path) -> LoadedExport:
        return load_onnx(path)

    def recognises(self, path: Path) -> bool:
        return path.suffix == ".onnx"

    def runtime(self) -> str:
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__}"

    def other_runtimes(self, path: Path) -> dict[str, LoadedExport]:
        """Other programs that read the same .onnx, checked by the gate too where installed: OpenVINO (fp32)."""
        import importlib.util

        if importlib.util.find_spec("openvino") is None:
            return {}
        import openvino

        core = openvino.Core()
        compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        output = compiled.output(0)
        loaded = load_onnx(path)

        def run(batch):
            array = batch.numpy() if isinstance(batch, torch.Tensor) else batch
            return compiled([array])[output]

        version = openvino.__version__.split("-")[0]
        return {f"openvino {version}": LoadedExport(run, loaded.meta, loaded.input, loaded.static_batch)}


def write_onnx(model, path: Path, example, meta: CheckpointMeta, options: ExportOptions) -> dict[str, Any]:
    """Export to ``path``, label it, check it; what was done, for model.json."""
    import onnx

    from zoo.exporter.metadata import metadata_props

    module, example, dynamic, names = _traced_inputs(model, example, meta, options)
    first_error = None
    if options.opset < DYNAMO_MIN_OPSET:  # the dynamo exporter writes opset 18 and newer; the older one writes these
        if options.embed_preprocessing:
            raise ExportError(f"--opset {options.opset}: embedded preprocessing needs opset {DYNAMO_MIN_OPSET} or newer "
                              "(antialiased Resize); use --opset 18")
        _export_torchscript_based(module, example, path, meta, options)
        exporter = "torchscript"
    else:
        exporter, first_error = _export_dynamo(module, example, path, meta, options, dynamic, names)
    proto = honour_opset(onnx.load(str(path)), options.opset, meta)
    strip_machine_paths(proto)
    for key, value in metadata_props(meta, options.embed_preprocessing).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"exported ONNX model failed onnx.checker: {str(exc).splitlines()[0]}") from exc
    onnx.save(proto, str(path))
    return {"exporter": exporter, "opset": proto.opset_import[0].version, "fallback_reason": first_error,
            "dynamic_batch": options.dynamic_batch, "embedded_preprocessing": options.embed_preprocessing,
            "input": names[0]}


def _export_dynamo(module, example, path: Path, meta: CheckpointMeta, options: ExportOptions, dynamic, names):
    """(exporter used, why the dynamo exporter failed or None)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example,), str(path), dynamo=True, opset_version=options.opset,
                              input_names=[names[0]], output_names=["logits"], dynamic_shapes=dynamic,
                              external_data=False, verbose=False)
        return "dynamo", None
    except Exception as exc:  # noqa: BLE001 - the dynamo exporter fails in many ways; fall back and say so
        if options.embed_preprocessing:  # the fallback would bake one image size into the graph
            raise ExportError(f"ONNX export of {meta.model} with embedded preprocessing failed: {_first(exc)}") from exc
        log.warning("dynamo ONNX export failed (%s); using the TorchScript-based exporter", _first(exc))
        _export_torchscript_based(module, example, path, meta, options)
        return "torchscript", _first(exc)


def honour_opset(proto, opset: int, meta: CheckpointMeta):
    """The opset asked for (converted down if the exporter wrote a newer one, or refused in one line), in
    the lowest IR version that opset allows, so older runtimes load the file (onnxruntime 1.17 reads IR 9
    at most; opset 18 needs only IR 8)."""
    import onnx
    from onnx import helper, version_converter

    written = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), opset)
    if written != opset:
        try:
            proto = version_converter.convert_version(proto, opset)
            onnx.checker.check_model(proto)
        except Exception as exc:  # noqa: BLE001 - the converter refuses what the opset cannot express
            raise ExportError(f"--opset {opset}: {meta.model} cannot be written in ONNX opset {opset} (the exporter "
                              f"wrote {written}; converting failed: {_first(exc)}); use --opset {written}") from exc
    proto.ir_version = helper.find_min_ir_version_for(list(proto.opset_import), ignore_unknown=True)
    return proto


def strip_machine_paths(proto) -> None:
    """torch.onnx records each node's Python stack (`pkg.torch.onnx.stack_trace`: source files of this
    machine's checkout and site-packages); an export says nothing about where it was made."""
    graphs = [proto.graph, *(f for f in proto.functions)]
    while graphs:
        graph = graphs.pop()
        for node in graph.node:
            keep = [p for p in node.metadata_props if not _machine_specific(p.key, p.value)]
            if len(keep) != len(node.metadata_props):
                del node.metadata_props[:]
                node.metadata_props.extend(keep)
            graphs += [attr.g for attr in node.attribute if attr.HasField("g")]
            graphs += [g for attr in node.attribute for g in attr.graphs]
        if hasattr(graph, "metadata_props"):
            keep = [p for p in graph.metadata_props if not _machine_specific(p.key, p.value)]
            del graph.metadata_props[:]
            graph.metadata_props.extend(keep)


def _machine_specific(key: str, value: str) -> bool:
    return key.endswith("stack_trace") or "site-packages" in value or value.startswith(("/", "C:\\"))


def _traced_inputs(model, example, meta: CheckpointMeta, options: ExportOptions):
    """(module, example input, dynamic shapes, (input name,)) for the plain or the embedded graph."""
    batch = torch.export.Dim("batch", min=1, max=1024) if options.dynamic_batch else None
    if not options.embed_preprocessing:
        return model, example, ({0: batch},) if batch is not None else None, ("input",)
    from zoo.exporter.embedded import WithPreprocessing

    pre = meta.preprocessing
    module = WithPreprocessing(model, pre).eval()
    # an example image that is neither square nor at the resize size, so no size is baked in
    height, width = pre.resize_size + 13, pre.resize_size + 41
    image = torch.randint(0, 256, (len(example), height, width, 3), dtype=torch.uint8)
    side = torch.export.Dim("height", min=pre.input_size, max=8192), torch.export.Dim("width", min=pre.input_size, max=8192)
    shapes = {0: batch, 1: side[0], 2: side[1]} if batch is not None else {1: side[0], 2: side[1]}
    return module, image, (shapes,), ("image",)


def _export_torchscript_based(module, example, path: Path, meta: CheckpointMeta, options: ExportOptions) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=min(options.opset, 17),
                              input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}} if options.dynamic_batch
                              else None)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"ONNX export of {meta.model} failed with both exporters: {_first(exc)}") from exc


def load_onnx(path: Path) -> LoadedExport:
    """An onnxruntime session (CPU) for any ONNX file zoo wrote, with its metadata."""
    import onnx
    import onnxruntime as ort

    try:
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    except Exception as exc:  # noqa: BLE001 - protobuf raises its own DecodeError for a damaged file
        raise ZooError(f"{path} is not a readable ONNX model ({type(exc).__name__}); export it again") from exc
    if "zoo.meta" not in props:
        raise ZooError(f"{path} has no zoo metadata (zoo.meta); export it with `zoo export`")
    meta = CheckpointMeta.from_dict(json.loads(props["zoo.meta"]), f"metadata of {path}")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime refuses a graph it cannot run: say which file
        raise ZooError(f"onnxruntime cannot run {path.name} ({_first(exc)[:300]}); export it again") from exc
    first = session.get_inputs()[0]
    static = first.shape[0] if isinstance(first.shape[0], int) else None
    kind = "uint8" if first.type == "tensor(uint8)" else "tensor"

    def run(batch):
        array = batch.numpy() if isinstance(batch, torch.Tensor) else batch
        return session.run(None, {first.name: array})[0]

    return LoadedExport(run, meta, kind, static, {"session": session})


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200] if text else ''}"
