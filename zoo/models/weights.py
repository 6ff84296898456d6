"""Loading weights into a model: files, zoo checkpoints, and published (DEFAULT) weights."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import DownloadError, WeightsError
from zoo.hub import cache_dir, download_file, verify_file
from zoo.files import read_json
from zoo.specs import ModelInfo, resolve_callable

log = logging.getLogger("zoo.weights")

# Prefixes that wrappers add to parameter names: DDP ("module.") and torch.compile ("_orig_mod.").
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


@dataclass
class LoadReport:
    """What happened when weights were loaded into a model."""

    source: str
    loaded: int = 0
    dropped: list[str] = field(default_factory=list)  # shape mismatch: the new head

    def describe(self) -> str:
        text = f"loaded {self.loaded} tensors from {self.source}"
        if self.dropped:
            text += f"; new head, dropped {', '.join(self.dropped)}"
        return text


def read_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state_dict, metadata) from .safetensors (+ .json beside it) or .pt/.pth (weights_only)."""
    path = Path(path)
    if path.is_dir():
        path = path / "best.safetensors"
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist; pass a .safetensors, .pt or .pth file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types across versions
            raise WeightsError(f"cannot read {path} as safetensors ({exc}); is the file complete?") from exc
        sidecar = path.with_suffix(".json")
        meta = read_json(sidecar, "checkpoint metadata") if sidecar.is_file() else {}
        if not isinstance(meta, dict):
            raise WeightsError(f"checkpoint metadata {sidecar} holds a {type(meta).__name__}, not an object; "
                               "restore it or train again")
        return state, meta
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for unreadable/unsafe files
        raise WeightsError(
            f"cannot load {path} with weights_only=True ({str(exc).splitlines()[0][:200]}); "
            "zoo only loads plain tensors, convert the file to safetensors"
        ) from exc
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        return obj["model"], obj.get("meta", {})
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        return obj["state_dict"], obj.get("meta", {})
    if isinstance(obj, dict):
        return obj, {}
    raise WeightsError(f"{path} holds a {type(obj).__name__}, not a state dict")


def load_into(model: Any, state: dict[str, Any], source: str, head: str | None = None) -> LoadReport:
    """Load matching tensors; drop the head's when their shape differs (a head for other classes).

    ``head`` is the attribute holding the classifier (``fc``, ``head.fc``, ...): only its tensors may
    be dropped. A body tensor of another shape, or anything missing or unexpected, is an error:
    silently random layers are the classic fine-tuning bug.
    """
    own = model.state_dict()
    state = {_strip_wrappers(k): v for k, v in state.items()}
    report = LoadReport(source=source)
    usable, body_mismatch = {}, []
    for key, value in state.items():
        if key in own and tuple(own[key].shape) != tuple(value.shape):
            in_head = head is None or key.startswith(head + ".")
            (report.dropped if in_head else body_mismatch).append(key)
        else:
            usable[key] = value
    if body_mismatch:
        key = body_mismatch[0]
        raise WeightsError(
            f"weights from {source} do not fit {type(model).__name__}: {_short(body_mismatch)} "
            f"{'has' if len(body_mismatch) == 1 else 'have'} another shape ({tuple(state[key].shape)} vs "
            f"{tuple(own[key].shape)} for {key}); only the head ({head}) may differ, check the architecture"
        )
    missing = [k for k in own if k not in usable and k not in report.dropped]
    unexpected = [k for k in usable if k not in own]
    if missing or unexpected:
        detail = []
        if missing:
            detail.append(f"missing {_short(missing)}")
        if unexpected:
            detail.append(f"unexpected {_short(unexpected)}")
        raise WeightsError(
            f"weights from {source} do not fit {type(model).__name__}: {'; '.join(detail)}; "
            "check that they were saved from the same architecture"
        )
    model.load_state_dict(usable, strict=False)
    report.loaded = len(usable)
    return report


def published_weights_file(info: ModelInfo) -> Path:
    """The published weights file of a model with a WeightsFile: from the cache (checksum checked),
    downloaded once when online; offline, one line saying where to put it. Cheap to call early."""
    path = cached_weights_path(info.weights.file_name)
    if not path.is_file():
        try:
            download_file(info.weights.url, path, info.weights.sha256, progress=True)
        except DownloadError as exc:
            raise WeightsError(f"no published weights for {info.name} in the cache and the download failed: {exc}") from exc
    elif info.weights.sha256 and not verify_file(path, info.weights.sha256):
        raise WeightsError(f"cached weights {path} do not match their checksum; delete the file and try again")
    return path


def pretrained_state_dict(info: ModelInfo) -> tuple[dict[str, Any], str]:
    """Published weights for a model: from the cache, downloaded once when online."""
    if info.weights is not None:
        state, _ = read_checkpoint(published_weights_file(info))
        return state, info.weights.url
    if info.pretrained_loader is not None:
        try:
            return resolve_callable(info.pretrained_loader)(), f"{info.source} published weights"
        except (OSError, RuntimeError, ValueError) as exc:
            raise WeightsError(
                f"cannot get published weights for {info.name} ({str(exc).splitlines()[0][:200]}); "
                "offline machines need them in the Hugging Face cache (~/.cache/huggingface/hub)"
            ) from exc
    raise WeightsError(f"{info.name} has no published weights; train from scratch (weights=None) or pass a file")


def cached_weights_path(file_name: str) -> Path:
    """Where weights live: zoo's cache, or torch hub's if the file is already there."""
    import os

    torch_home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    torch_hub_copy = torch_home / "hub" / "checkpoints" / file_name
    if torch_hub_copy.is_file():
        return torch_hub_copy
    return cache_dir("weights") / file_name


def _strip_wrappers(key: str) -> str:
    for prefix in _WRAPPER_PREFIXES:
        while key.startswith(prefix):
            key = key[len(prefix):]
    return key


def _short(keys: list[str], n: int = 4) -> str:
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")
