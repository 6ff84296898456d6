"""TrainConfig: the single source of every training knob, saved as JSON in the run folder."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import TrainingError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("cosine", "step", "multistep", "onecycle", "none")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
CACHE_MODES = ("auto", "memory", "disk", "none")
PIPELINES = ("auto", "workers", "device")
FEATURE_CACHE = ("auto", "off")


@dataclass
class TrainConfig:
    model: str = "resnet18"
    data: str = "digits"
    data_root: str | None = None
    val_ratio: float = 0.2  # for layouts without a split
    epochs: int = 10
    batch_size: int = 64
    image_size: int | None = None  # default: the model's input size
    optimizer: str = "adamw"
    lr: float | None = None  # default: 0.1 * batch/256 for sgd, 1e-3 for adam(w)
    weight_decay: float = 1e-4
    momentum: float = 0.9
    nesterov: bool = False
    scheduler: str = "cosine"
    warmup_epochs: float = 0.0
    warmup_steps: int = 0
    step_size: int = 7  # step scheduler
    gamma: float = 0.1  # step / multistep decay
    milestones: list[int] = field(default_factory=list)  # multistep, in epochs
    label_smoothing: float = 0.0
    accumulate_steps: int = 1
    grad_clip: float | None = None
    seed: int = 0
    device: str = "auto"  # auto: cuda > mps > cpu
    precision: str = "auto"  # auto: bf16 on cuda, fp32 elsewhere
    channels_last: bool | None = None  # default: on for cuda
    compile: bool | None = None  # default: on for cuda when the run is long enough to repay it
    workers: int | None = None
    weights: str | None = None  # None, "DEFAULT" or a path
    new_head: bool = False  # a weights file trained for another class count: keep its body, start a new head
    augment: str = "auto"
    cache: str = "auto"  # decode-once uint8 cache of file datasets: in memory when it fits, or on disk (reused)
    pipeline: str = "auto"  # augment per image in DataLoader workers, or whole batches on the device (auto: when cached)
    feature_cache: str = "auto"  # head-only training without augmentation: compute backbone features once
    freeze: str = "none"  # none | backbone | <n first stages>
    unfreeze_at: int | None = None  # epoch at which a frozen body starts training
    body_lr_scale: float = 0.1  # body lr = lr * this once unfrozen
    patience: int | None = None  # early stopping on val top-1
    output: str | None = None  # default runs/<model>-<data>-<timestamp>
    overwrite: bool = False
    quiet: bool = False
    max_steps_per_epoch: int | None = None  # for smoke runs

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("optimizer", self.optimizer, OPTIMIZERS), ("scheduler", self.scheduler, SCHEDULERS),
            ("precision", self.precision, PRECISIONS), ("cache", self.cache, CACHE_MODES),
            ("pipeline", self.pipeline, PIPELINES), ("feature_cache", self.feature_cache, FEATURE_CACHE),
        ):
            if value not in allowed:
                raise TrainingError(f"unknown {name} {value!r}; use one of {', '.join(allowed)}")
        if self.epochs < 1 or self.batch_size < 1 or self.accumulate_steps < 1:
            raise TrainingError("epochs, batch size and accumulate steps must be at least 1")
        if self.freeze not in ("none", "backbone") and not str(self.freeze).isdigit():
            raise TrainingError(f"--freeze {self.freeze!r}: use none, backbone or a number of stages")

    @property
    def effective_lr(self) -> float:
        if self.lr is not None:
            return self.lr
        return 0.1 * self.batch_size * self.accumulate_steps / 256 if self.optimizer == "sgd" else 1e-3

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        from zoo.engine.checkpoint import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TrainingError(f"unknown config keys {', '.join(unknown)}; see `zoo finetune --help`")
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """Read a .toml or .json config; explicit overrides win."""
        path = Path(path)
        if not path.is_file():
            raise TrainingError(f"config file {path} does not exist")
        try:
            values = tomllib.loads(path.read_text()) if path.suffix == ".toml" else json.loads(path.read_text())
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise TrainingError(f"config file {path} is not valid ({exc})") from exc
        values = values.get("train", values)
        return cls.from_dict({**values, **{k: v for k, v in overrides.items() if v is not None}})
