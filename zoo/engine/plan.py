"""`zoo finetune --dry-run`: everything a run would do, resolved the way the run resolves it, nothing written."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import nn

from zoo.data.dataset import ImageDataset
from zoo.data.inputs import InputOptions, plan_storage
from zoo.data.transforms import resolve_preset
from zoo.engine import feature_cache, parts
from zoo.engine.config import TrainConfig
from zoo.engine.defaults import resolve_defaults
from zoo.engine.memory import check_fits, probe
from zoo.runs import RunFolder, find_run, new_run_name
from zoo.specs import Preprocessing


@dataclass
class RunPlan:
    model: str
    dataset: str
    layout: str
    classes: list[str]
    counts: dict[str, list[int]]
    image_size: int
    resize_size: int
    augment: str
    pixels: str  # where the decoded train images live: memory, disk or files
    pipeline: str
    trainable_parameters: int
    frozen_parameters: int
    optimizer: str
    lr: float
    body_lr: float
    weight_decay: float
    schedule: str
    epochs: int
    steps_per_epoch: int
    device: str
    precision: str
    channels_last: bool
    compile: str
    memory: str  # the estimate a run is checked against (zoo.engine.memory)
    feature_cache: bool
    output: str
    resume: bool
    auto: str  # what `auto` options resolved to

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """The plan as aligned lines, for the terminal."""
        split_sizes = ", ".join(f"{split} {sum(n)}" for split, n in self.counts.items())
        per_class = "; ".join(f"{split}: " + " ".join(map(str, n)) for split, n in self.counts.items())
        rows = [
            ("model", self.model),
            ("dataset", f"{self.dataset} ({self.layout}), {len(self.classes)} classes, {split_sizes}"),
            ("per class", per_class if len(self.classes) <= 30 else "(more than 30 classes: zoo data check shows them)"),
            ("image size", f"{self.image_size} px (evaluation: resize {self.resize_size}, centre crop)"),
            ("augmentation", f"{self.augment}, {self.pipeline} pipeline, train pixels in {self.pixels}"
                             + (", head trains on cached backbone features" if self.feature_cache else "")),
            ("parameters", f"{self.trainable_parameters:,} trainable, {self.frozen_parameters:,} frozen"),
            ("optimizer", f"{self.optimizer}, lr {self.lr:g} (body {self.body_lr:g}), weight decay {self.weight_decay:g}"),
            ("schedule", f"{self.schedule}, {self.epochs} epochs x {self.steps_per_epoch} steps"),
            ("device", f"{self.device}, {self.precision}, channels_last {'on' if self.channels_last else 'off'}"),
            ("torch.compile", self.compile),
            ("memory", self.memory),
            ("auto", self.auto),
            ("run folder", f"{self.output}{' (resumed)' if self.resume else ''}"),
        ]
        return "\n".join(f"{key:<14} {value}" for key, value in rows) + "\n(dry run: nothing was written)"


def plan_run(model: nn.Module, dataset: ImageDataset, cfg: TrainConfig, preprocessing: Preprocessing,
             classifier: str, model_name: str, resume: str | Path | None) -> RunPlan:
    cfg, chosen = resolve_defaults(cfg, preprocessing.input_size, len(dataset.train))
    if resume is not None:
        run = find_run(resume)
    else:
        run = RunFolder(cfg.output) if cfg.output else new_run_name(model_name, dataset.name)
        run.check_new_target(cfg.overwrite)
    device = parts.pick_device(cfg.device)
    amp_dtype = parts.pick_precision(cfg.precision, device)
    channels_last = cfg.channels_last if cfg.channels_last is not None else parts.channels_last_default(device)
    frozen = parts.frozen_modules(model, cfg.freeze, classifier)
    frozen_ids = {id(p) for m in frozen for p in m.parameters()}
    frozen_count = sum(p.numel() for p in model.parameters() if id(p) in frozen_ids)
    options = InputOptions(cfg.batch_size, cfg.augment, cfg.cache, cfg.pipeline, cfg.workers, channels_last)
    pixels, pipeline = plan_storage(dataset, preprocessing, options)
    augment = resolve_preset(cfg.augment, preprocessing.input_size)
    train_images = len(dataset.train)
    batches = train_images // cfg.batch_size if train_images > cfg.batch_size else 1
    steps = max(1, batches // cfg.accumulate_steps)
    if cfg.max_steps_per_epoch:
        steps = min(steps, cfg.max_steps_per_epoch)
    _, compile_reason = parts.compile_decision(cfg.compile, device, steps * cfg.epochs)
    memory = check_fits(probe(model, preprocessing.input_size, model_name), cfg.batch_size,
                        preprocessing.input_size, device, amp_dtype is not None)
    warmup = cfg.warmup_steps or round(cfg.warmup_epochs * steps)
    schedule = cfg.scheduler + (f" after {warmup} warmup steps" if warmup else "")
    lr = cfg.effective_lr
    return RunPlan(
        model=model_name, dataset=dataset.name, layout=dataset.layout, classes=list(dataset.classes),
        counts=dataset.counts(), image_size=preprocessing.input_size, resize_size=preprocessing.resize_size,
        augment=augment, pixels=pixels, pipeline=pipeline,
        trainable_parameters=sum(p.numel() for p in model.parameters()) - frozen_count, frozen_parameters=frozen_count,
        optimizer=cfg.optimizer, lr=lr, body_lr=lr * cfg.body_lr_scale if cfg.freeze != "none" else lr,
        weight_decay=cfg.weight_decay, schedule=schedule, epochs=cfg.epochs, steps_per_epoch=steps,
        device=str(device), precision=parts.precision_name(amp_dtype),
        channels_last=channels_last, compile=compile_reason, memory=memory,
        feature_cache=feature_cache.wanted(cfg, augment, distributed=False), output=str(run.final),
        resume=resume is not None, auto=", ".join(chosen) or "none")
