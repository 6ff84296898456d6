"""Rebuild a trained model and its metadata from a run folder or a checkpoint file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import ExportError

REQUIRED_META = ("model", "num_classes", "classes", "preprocessing")


@dataclass
class LoadedCheckpoint:
    model: Any  # nn.Module in eval mode
    meta: dict[str, Any]
    checkpoint: Path
    run_dir: Path | None


def load_checkpoint(run: str | Path | None = None, checkpoint: str | Path | None = None) -> LoadedCheckpoint:
    """The best checkpoint of a run (default: runs/latest), or a given .safetensors with its .json."""
    from zoo.engine.trainer import resolve_run
    from zoo.models.api import create_model
    from zoo.models.weights import load_into, read_checkpoint

    run_dir = None
    if checkpoint is None:
        run_dir = resolve_run(run)
        checkpoint = run_dir / "best.safetensors"
    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        run_dir, checkpoint = checkpoint, checkpoint / "best.safetensors"
    state, meta = read_checkpoint(checkpoint)
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ExportError(
            f"checkpoint {checkpoint} has no metadata ({', '.join(missing)} missing from "
            f"{checkpoint.with_suffix('.json').name}); export checkpoints written by `zoo finetune`"
        )
    if len(meta["classes"]) != meta["num_classes"]:
        raise ExportError(f"checkpoint {checkpoint} names {len(meta['classes'])} classes but has {meta['num_classes']}")
    model = create_model(meta["model"], num_classes=meta["num_classes"])
    try:
        report = load_into(model, state, str(checkpoint))
    except Exception as exc:
        raise ExportError(f"checkpoint {checkpoint} does not fit {meta['model']}: {exc}") from exc
    if report.dropped:
        raise ExportError(
            f"checkpoint {checkpoint} has a head of another class count than its metadata says "
            f"({meta['num_classes']}): {', '.join(report.dropped)}"
        )
    if run_dir is None and checkpoint.parent.joinpath("config.json").is_file():
        run_dir = checkpoint.parent
    return LoadedCheckpoint(model.eval(), meta, checkpoint, run_dir)


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
