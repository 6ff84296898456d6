"""TorchScript (traced). Upstream recommends torch.export (the pt2 format) instead; kept because users ask for it."""

from __future__ import annotations

import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ZooError
from zoo.exporter.formats import ExportFormat, ExportOptions, LoadedExport, temp_path
from zoo.runs import CheckpointMeta

log = logging.getLogger("zoo.export")


class TorchScriptFormat(ExportFormat):
    name = "torchscript"
    file_name = "model.pt"
    description = "TorchScript, traced (deprecated upstream: prefer pt2)"

    def export(self, model, path: Path, example, meta: CheckpointMeta, options: ExportOptions) -> dict[str, Any]:
        from zoo.exporter.metadata import export_metadata

        log.info("note: TorchScript is deprecated upstream; torch.export (--format pt2) is what PyTorch recommends")
        buffer = io.BytesIO()  # saved from memory: the archive's root folder is then not the temp file's name
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, example, check_trace=False)
            torch.jit.save(traced, buffer, _extra_files={"zoo.json": json.dumps(export_metadata(meta))})
        with temp_path(path) as tmp:
            tmp.write_bytes(buffer.getvalue())
        if not options.dynamic_batch:
            log.info("note: a traced TorchScript model takes any batch size; --static does not fix it")
        return {"exporter": "torch.jit.trace", "dynamic_batch": True}  # what the file does, whatever was asked

    def load(self, path: Path) -> LoadedExport:
        files = {"zoo.json": ""}
        try:
            module = load_torchscript(path, files)
        except Exception as exc:  # noqa: BLE001 - torch.jit.load fails in many ways on a damaged file
            raise ZooError(f"{path} is not a readable TorchScript model ({type(exc).__name__}); export it again") from exc
        if not files["zoo.json"]:
            raise ZooError(f"{path} has no zoo metadata (zoo.json); export it with `zoo export`")
        meta = CheckpointMeta.from_dict(json.loads(files["zoo.json"]), f"metadata of {path}")

        def run(batch: torch.Tensor):
            with torch.no_grad():
                return module(batch).numpy()

        return LoadedExport(run, meta)

    def recognises(self, path: Path) -> bool:
        import zipfile

        return path.suffix == ".pt" and (not zipfile.is_zipfile(path) or any(
            "/code/" in n or n.endswith("constants.pkl") for n in zipfile.ZipFile(path).namelist()))


def load_torchscript(path: Path, extra_files: dict[str, str] | None = None) -> torch.jit.ScriptModule:
    """torch.jit.load, quiet about its deprecation: TorchScript is an export format users ask for."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        return torch.jit.load(str(path), map_location="cpu", _extra_files=extra_files or {}).eval()
