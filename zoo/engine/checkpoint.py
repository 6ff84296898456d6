"""Run-folder files, all written atomically: a kill at any moment leaves the last good state.

    runs/<name>/config.json                 the TrainConfig
    runs/<name>/best.safetensors + .json    best weights by val top-1, with metadata
    runs/<name>/last.safetensors + .json    weights after the last finished epoch
    runs/<name>/resume/                     model, optimizer/scheduler/scaler state and meta of the
                                            last finished epoch, replaced as one folder
    runs/<name>/metrics.jsonl, metrics.csv  one row per epoch
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


def publish_mode(path: str | Path) -> None:
    """mkstemp makes 0600 files; give finished outputs the usual permissions."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    publish_mode(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(Path(path), text.encode())


def save_weights(path: Path, model: torch.nn.Module, meta: dict[str, Any]) -> None:
    """<path>.safetensors plus <path>.json metadata, each replaced atomically."""
    from safetensors.torch import save

    state = {k: v.detach().contiguous().cpu() for k, v in unwrap(model).state_dict().items()}
    atomic_write_bytes(path.with_suffix(".safetensors"), save(state, metadata={"format": "pt"}))
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2))


def save_resume_state(run_dir: Path, model, optimizer, scheduler, scaler, meta: dict[str, Any]) -> None:
    """Write resume/ as a whole: a temp folder renamed into place, the old one kept until then."""
    staging = Path(tempfile.mkdtemp(prefix=".resume-", dir=run_dir))
    state = {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else {},
        "scaler": scaler.state_dict() if scaler is not None else {},
    }
    torch.save(state, staging / "state.pt")
    save_weights(staging / "model", model, meta)
    final, old = run_dir / "resume", run_dir / ".resume-old"
    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)


def load_resume_state(run_dir: Path) -> tuple[dict, dict, dict[str, Any]]:
    """(model state, optimizer/scheduler/scaler state, meta) of the last finished epoch."""
    from safetensors.torch import load_file

    for folder in (run_dir / "resume", run_dir / ".resume-old"):  # .resume-old: killed mid-swap
        if (folder / "state.pt").is_file() and (folder / "model.json").is_file():
            state = torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
            meta = json.loads((folder / "model.json").read_text())
            return load_file(str(folder / "model.safetensors")), state, meta
    raise TrainingError(f"run {run_dir} has no finished epoch to resume from; start it again without --resume")


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DDP and torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)
