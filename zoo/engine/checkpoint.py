"""Checkpoint files: weights with metadata (safetensors + JSON) and the resume state.

zoo.engine.writers decides when they are written; file names belong to zoo.runs; every file is
written atomically (zoo.files), so a kill at any moment leaves the last good state. ``resume/`` is
replaced as a whole folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from zoo.errors import TrainingError
from zoo.files import atomic_target, atomic_write_text
from zoo.runs import CheckpointMeta

def save_weights(stem: Path, model: torch.nn.Module, meta: CheckpointMeta | dict[str, Any]) -> None:
    """<stem>.safetensors plus <stem>.json metadata, each replaced atomically."""
    from safetensors.torch import save

    state = {k: v.detach().contiguous().cpu() for k, v in unwrap(model).state_dict().items()}
    with atomic_target(stem.with_suffix(".safetensors")) as tmp:
        tmp.write_bytes(save(state, metadata={"format": "pt"}))
    text = meta.to_json() if isinstance(meta, CheckpointMeta) else json.dumps(meta, indent=2)
    atomic_write_text(stem.with_suffix(".json"), text)


def save_resume_state(run_dir: Path, model, optimizer, scheduler, scaler, progress: dict[str, Any],
                      meta: CheckpointMeta, extra: dict[str, Any] | None = None) -> None:
    """Write resume/ as a whole: a temp folder renamed into place, the old one kept until then.

    resume/model.json is the checkpoint metadata with the loop's progress over it (``epoch`` is the
    0-based index of the last finished epoch, ``best_top1``, ``best_epoch``, ``optimizer``)."""
    staging = Path(tempfile.mkdtemp(prefix=".resume-", dir=run_dir))
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes 0700 folders
    try:
        state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "scaler": scaler.state_dict(), "extra": extra or {}}  # extra: recipes' own state (EMA, ...)
        with atomic_target(staging / "state.pt") as tmp:
            torch.save(state, tmp)
        save_weights(staging / "model", model, {**meta.to_dict(), **progress})
        final, old = run_dir / "resume", run_dir / ".resume-old"
        if final.exists():
            if old.exists():
                shutil.rmtree(old)
            os.replace(final, old)
        os.replace(staging, final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def load_resume_state(run_dir: Path) -> tuple[dict, dict, dict[str, Any]]:
    """(model state, optimizer/scheduler/scaler state, progress) of the last finished epoch."""
    from safetensors.torch import load_file

    for folder in (run_dir / "resume", run_dir / ".resume-old"):  # .resume-old: killed mid-swap
        if all((folder / name).is_file() for name in ("state.pt", "model.safetensors", "model.json")):
            state = torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
            progress = json.loads((folder / "model.json").read_text())
            return load_file(str(folder / "model.safetensors")), state, progress
    raise TrainingError(f"run {run_dir} has no finished epoch to resume from; start it again without --resume "
                        "(it will be replaced)")


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DDP and torch.compile wrappers (in either order)."""
    from torch.nn.parallel import DistributedDataParallel

    model = getattr(model, "_orig_mod", model)
    if isinstance(model, DistributedDataParallel):
        model = model.module
    return getattr(model, "_orig_mod", model)


def check_tensorboard() -> None:
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        raise TrainingError("--tensorboard needs the tensorboard package: pip install 'zoo[tensorboard]' "
                            "(or drop --tensorboard)")
