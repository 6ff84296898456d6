"""pt2: torch.export with a dynamic batch, saved with torch.export.save (metadata as an extra file)."""

from __future__ import annotations

import io
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
        for node in program.graph.nodes:  # source lines of this machine: an export says nothing of where it was made
            node.meta.pop("stack_trace", None)
        buffer = io.BytesIO()  # saved from memory: the archive's root folder is then not the temp file's name
        torch.export.save(program, buffer, extra_files={"zoo.json": json.dumps(export_metadata(meta))})
        with temp_path(path) as tmp:
            tmp.write_bytes(buffer.getvalue())
        return {"exporter": "torch.export", "dynamic_batch": options.dynamic_batch,
                **({} if options.dynamic_batch else {"batch_size": options.batch_size})}

    def load(self, path: Path) -> LoadedExport:
        import logging
        import zipfile

        files = {"zoo.json": ""}
        if not zipfile.is_zipfile(path):  # truncated or not a pt2 archive: one line, before torch logs a traceback
            raise ZooError(f"{path} is not a readable pt2 export (not a complete archive); export it again")
        torch_log = logging.getLogger("torch.export")
        level = torch_log.level
        torch_log.setLevel(logging.ERROR)  # torch logs the deserialisation traceback at WARNING before raising
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                program = torch.export.load(str(path), extra_files=files)
        except Exception as exc:  # noqa: BLE001 - a damaged archive fails in many ways
            raise ZooError(f"{path} is not a readable pt2 export ({type(exc).__name__}); export it again") from exc
        finally:
            torch_log.setLevel(level)
        if not files["zoo.json"]:
            raise ZooError(f"{path} has no zoo metadata (zoo.json); export it with `zoo export`")
        meta = CheckpointMeta.from_dict(json.loads(files["zoo.json"]), f"metadata of {path}")
        module = program.module()

        def run(batch: torch.Tensor):
            with torch.no_grad():
                return module(batch).numpy()

        return LoadedExport(run, meta, static_batch=static_batch(program))


def static_batch(program) -> int | None:
    """The batch a --static program was specialised to (its input's first dimension is a number), else None."""
    names = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in names:
            size = node.meta["val"].shape[0]
            return int(size) if isinstance(size, int) else None
    return None
