"""Rebuild a trained model and its metadata from a run folder or a checkpoint file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import ExportError, ZooError
from zoo.runs import BEST, LAST, CheckpointMeta, RunFolder, find_run


@dataclass
class LoadedCheckpoint:
    model: Any  # nn.Module in eval mode
    meta: CheckpointMeta
    checkpoint: Path
    run: RunFolder | None


def load_checkpoint(run: str | Path | None = None, checkpoint: str | Path | None = None,
                    model: Any = None) -> LoadedCheckpoint:
    """The best checkpoint of a run (default: runs/latest), or a given .safetensors with its .json.

    ``model`` is the module to load the weights into; by default it is built from the registry by
    the name the metadata records (pass it for a model trained with ``zoo.fit`` and not registered).
    """
    from zoo.models.api import create_model, model_info
    from zoo.models.weights import load_into, read_checkpoint

    folder = None
    if checkpoint is None:
        folder = find_run(run)
        checkpoint = folder.weights(BEST)
    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        folder, checkpoint = RunFolder(checkpoint), RunFolder(checkpoint).weights(BEST)
    if not checkpoint.is_file():
        last = checkpoint.with_name(f"{LAST}.safetensors")
        hint = f"; pass --checkpoint {last} to use the last epoch's" if last.is_file() and last != checkpoint else ""
        raise ExportError(f"checkpoint {checkpoint} does not exist{hint}")
    state, raw_meta = read_checkpoint(checkpoint)
    sidecar = checkpoint.with_suffix(".json")
    if not raw_meta:
        raise ExportError(f"checkpoint {checkpoint} has no metadata ({sidecar.name} is missing or empty); "
                          "export checkpoints written by `zoo finetune`")
    meta = CheckpointMeta.from_dict(raw_meta, f"checkpoint metadata {sidecar}")
    if model is None:
        try:
            model = create_model(meta.model, num_classes=meta.num_classes)
        except ZooError as exc:
            raise ExportError(f"cannot rebuild model {meta.model!r} of {checkpoint} ({exc}); if it was trained "
                              "with zoo.fit, pass the module: zoo.export(..., model=my_module)") from exc
        head = model_info(meta.model).classifier
    else:
        head = None
    try:
        report = load_into(model, state, str(checkpoint), head=head)
    except ZooError as exc:
        raise ExportError(f"checkpoint {checkpoint} does not fit {meta.model}: {exc}") from exc
    if report.dropped:
        raise ExportError(f"checkpoint {checkpoint} has a head of another class count than its metadata says "
                          f"({meta.num_classes}): {', '.join(report.dropped)}")
    if folder is None and checkpoint.parent.joinpath("config.json").is_file():
        folder = RunFolder(checkpoint.parent)
    return LoadedCheckpoint(model.eval(), meta, checkpoint, folder)
