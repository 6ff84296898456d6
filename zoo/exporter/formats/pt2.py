"""pt2: torch.export with a dynamic batch, saved with torch.export.save (metadata as an extra file)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ExportError, ZooError
from zoo.exporter.formats import ExportFormat, ExportOptions, LoadedExport, temp_path
from zoo.runs import CheckpointMeta


class Pt2Format(ExportFormat):
    name = "pt2"
    file_name = "model.pt2"
    description = "torch.export ExportedProgram (what PyTorch recommends over TorchScript)"

    def export(self, model, path: Path, example, meta: CheckpointMeta, options: ExportOptions) -> dict[str, Any]:
        from zoo.exporter.metadata import export_metadata

        shapes = ({0: torch.export.Dim("batch", min=1, max=1024)},) if options.dynamic_batch else None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                program = torch.export.export(model, (example,), dynamic_shapes=shapes)
        except Exception as exc:  # noqa: BLE001 - torch.export refuses some Python in models: say which
            raise ExportError(f"torch.export of {meta.model} failed: {type(exc).__name__}: "
                              f"{(str(exc).splitlines() or [''])[0][:200]}") from exc
        with temp_path(path) as tmp:
            torch.export.save(program, str(tmp), extra_files={"zoo.json": json.dumps(export_metadata(meta))})
        return {"exporter": "torch.export", "dynamic_batch": options.dynamic_batch}

    def load(self, path: Path) -> LoadedExport:
        files = {"zoo.json": ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                program = torch.export.load(str(path), extra_files=files)
        except Exception as exc:  # noqa: BLE001 - a damaged archive fails in many ways
            raise ZooError(f"{path} is not a readable pt2 export ({type(exc).__name__}); export it again") from exc
        if not files["zoo.json"]:
            raise ZooError(f"{path} has no zoo metadata (zoo.json); export it with `zoo export`")
        meta = CheckpointMeta.from_dict(json.loads(files["zoo.json"]), f"metadata of {path}")
        module = program.module()

        def run(batch: torch.Tensor):
            with torch.no_grad():
                return module(batch).numpy()

        return LoadedExport(run, meta)
