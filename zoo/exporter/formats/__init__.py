"""Export formats as objects: one module per format, all kept in the registry's ``exporters`` table.

A format knows its name, its file, whether it can run here (and what to install if not), how to
write a model and how to load the file back as a runner the parity gate and ``zoo predict`` call.
zoo's own formats register through the ``zoo.exporters`` entry-point group, like a third party's
(plugins/zoo-openvino is one): adding a format touches one module.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ExportError, UnknownNameError
from zoo.runs import CheckpointMeta

DEFAULT_OPSET = 18
# Formats that third-party distributions in this repository provide: named in the "unknown format" line.
KNOWN_PLUGINS = {"openvino": "pip install ./plugins/zoo-openvino"}


@dataclass(frozen=True)
class ExportOptions:
    opset: int = DEFAULT_OPSET
    dynamic_batch: bool = True
    batch_size: int = 1  # the fixed batch of a --static export
    embed_preprocessing: bool = False  # ONNX whose input is the decoded uint8 image (N, H, W, 3)
    calibration: Any = None  # (N, 3, H, W) float tensor or uint8 images: what int8 formats calibrate on


@dataclass
class LoadedExport:
    """A file zoo wrote, ready to run: logits for a batch, and the metadata that says how to prepare it."""

    run: Callable[[Any], np.ndarray]  # float (N, 3, H, W) tensor -> logits; uint8 (N, H, W, 3) when input == "uint8"
    meta: CheckpointMeta
    input: str = "tensor"  # "tensor" (preprocessed) or "uint8" (decoded RGB image, preprocessing inside)
    static_batch: int | None = None  # a --static export takes exactly this many images
    info: dict[str, Any] = field(default_factory=dict)


class ExportFormat:
    """Subclass and set the class attributes; override export, load and, if needed, recognises/available."""

    name: str = ""
    file_name: str = ""
    description: str = ""
    requires: tuple[str, ...] = ()  # importable modules it needs
    install_hint: str = ""  # what to run when one is missing
    gate: str = "logits"  # "logits": |diff| <= atol + rtol * max|logit| and the same top-1; "top1": agreement >= 0.99

    def available(self) -> str | None:
        """None when the format can run here, else the one line saying what to install."""
        missing = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if missing:
            return f"{self.name} needs {', '.join(missing)}: {self.install_hint or 'pip install ' + ' '.join(missing)}"
        return None

    def path_in(self, folder: Path, options: ExportOptions) -> Path:
        return folder / self.file_name

    def export(self, model, path: Path, example, meta: CheckpointMeta, options: ExportOptions) -> dict[str, Any]:
        """Write the model to ``path`` (atomically); what was done (exporter, opset, ...) for model.json."""
        raise NotImplementedError

    def load(self, path: Path) -> LoadedExport:
        raise NotImplementedError

    def recognises(self, path: Path) -> bool:
        return path.name.endswith(Path(self.file_name).suffix)


def register(ctx) -> None:
    """zoo's own formats (entry point zoo.exporters), in the order `--format all` writes them."""
    ctx.add_exporter("onnx", "zoo.exporter.formats.onnx:OnnxFormat")
    ctx.add_exporter("onnx-int8", "zoo.exporter.formats.onnx_int8:OnnxInt8Format")
    ctx.add_exporter("pt2", "zoo.exporter.formats.pt2:Pt2Format")
    ctx.add_exporter("torchscript", "zoo.exporter.formats.torchscript:TorchScriptFormat")


_instances: dict[Any, ExportFormat] = {}  # registered source -> its instance


def format_names() -> list[str]:
    from zoo.registry.core import get_registry

    registry = get_registry()
    registry.ensure_loaded("zoo.exporters")
    return registry.exporters.list()


def get_format(name: str) -> ExportFormat:
    """The format registered under ``name``; an unknown name is one line with the close matches (and the
    plugin to install, for the ones this repository ships)."""
    from zoo.registry.core import get_registry
    from zoo.specs import resolve_callable

    registry = get_registry()
    registry.ensure_loaded("zoo.exporters")
    if name not in registry.exporters and name in KNOWN_PLUGINS:
        raise ExportError(f"export format {name!r} comes from a plugin that is not installed: {KNOWN_PLUGINS[name]}")
    try:
        source = registry.exporters.get(name)
    except UnknownNameError as exc:
        raise ExportError(str(exc)) from None
    if source not in _instances:
        try:
            _instances[source] = resolve_callable(source)()
        except Exception as exc:  # noqa: BLE001 - a plugin's format may fail to import in any way
            owner = registry.exporters.owner(name)
            raise ExportError(f"export format {name!r} (from {owner}) cannot be loaded: {type(exc).__name__}: "
                              f"{exc}") from exc
    return _instances[source]


def format_for_path(path: Path) -> ExportFormat | None:
    """The first registered format that recognises a file (for zoo predict and zoo eval)."""
    for name in format_names():
        try:
            fmt = get_format(name)
        except Exception:  # noqa: BLE001 - a broken exporter plugin must not stop the others
            continue
        if fmt.recognises(path):
            return fmt
    return None


def load_export(path: Path) -> LoadedExport | None:
    fmt = format_for_path(path)
    if fmt is None:
        return None
    check_recorded_hashes(path)
    return fmt.load(path)


def check_recorded_hashes(path: Path) -> None:
    """A file beside the model.json of its export: every file its format wrote (an OpenVINO .bin with
    its .xml, say) still has the SHA-256 recorded at export time. A file alone is taken as it is."""
    from zoo.files import read_json
    from zoo.hub import file_digest

    model_json = path.parent / "model.json"
    if not model_json.is_file():
        return
    recorded = read_json(model_json, "export metadata")
    records = recorded.get("files") if isinstance(recorded, dict) else None
    for record in (records or {}).values():
        if not isinstance(record, dict) or record.get("path") != path.name:
            continue
        for name, digest in (record.get("files") or {path.name: record.get("sha256")}).items():
            part = path.parent / name
            if not part.is_file():
                raise ExportError(f"{part} is missing (model.json lists it with {path.name}); export again")
            if file_digest(part) != digest:
                raise ExportError(f"{part} does not match the SHA-256 that model.json records for it: it changed "
                                  "after `zoo export` (damaged or replaced); export again")


def temp_path(path: Path):
    """Where an exporter writes before the file is renamed into place (zoo.files.atomic_target)."""
    from zoo.files import atomic_target

    return atomic_target(path, suffix=path.suffix)
