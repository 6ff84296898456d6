"""`zoo finetune --dry-run`: everything a run would do, resolved the way the run resolves it, nothing written."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from zoo.data.dataset import MULTI_LABEL, ImageDataset
from zoo.data.decoded_cache import cache_budget, format_size
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
    """Every decision of a run, made once: `zoo finetune --dry-run` prints it, and the run executes it
    (zoo.engine.setup reads device, precision, layout, compile, steps and schedule from here)."""

    model: str
    dataset: str
    layout: str
    task: str  # single-label or multi-label
    classes: list[str]
    counts: dict[str, list[int]]
    data_fingerprint: str  # which files with which labels (resume checks it; trackers tag it)
    image_size: int
    resize_size: int
    geometry: str  # Preprocessing.describe(): the resize mode in words
    augment: str
    pixels: str  # where the decoded train images live: memory, disk or files
    cache_budget: str  # what the in-memory cache may take (--cache-budget), in binary units
    pipeline: str
    trainable_parameters: int
    frozen_parameters: int
    optimizer: str
    lr: float
    body_lr: float
    weight_decay: float
    schedule: str
    warmup_steps: int
    epochs: int
    steps_per_epoch: int  # optimizer steps of one process
    world_size: int
    global_batch: int  # images per optimizer step, all processes and micro-batches together
    device: str
    precision: str
    precision_reason: str
    channels_last: bool
    compile: str  # the decision in words
    compile_on: bool
    memory: str  # the estimate a run is checked against (zoo.engine.memory)
    feature_cache: bool
    output: str
    resume: bool
    auto: str  # what `auto` options resolved to
    config: dict[str, Any] = field(default_factory=dict)  # the resolved TrainConfig: a run's config.json
    time_estimate: str = ""  # zoo.engine.estimate, when asked for
    estimated_epoch_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def train_config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.config)

    def describe(self) -> str:
        """The plan as aligned lines, for the terminal."""
        split_sizes = ", ".join(f"{split} {sum(n)}" for split, n in self.counts.items())
        per_class = "; ".join(f"{split}: " + " ".join(map(str, n)) for split, n in self.counts.items())
        processes = f", {self.world_size} processes" if self.world_size > 1 else ""
        rows = [
            ("model", self.model),
            ("dataset", f"{self.dataset} ({self.layout}, {self.task}), {len(self.classes)} classes, {split_sizes}"),
            ("per class", per_class if len(self.classes) <= 30 else "(more than 30 classes: zoo data check shows them)"),
            ("image size", f"{self.image_size} px (evaluation: {self.geometry})"),
            ("augmentation", f"{self.augment}, {self.pipeline} pipeline, train pixels in {self.pixels} (cache "
                             f"budget {self.cache_budget})"
                             + (", head trains on cached backbone features" if self.feature_cache else "")),
            ("parameters", f"{self.trainable_parameters:,} trainable, {self.frozen_parameters:,} frozen"),
            ("optimizer", f"{self.optimizer}, lr {self.lr:g} (body {self.body_lr:g}), weight decay {self.weight_decay:g}"),
            ("schedule", f"{self.schedule}, {self.epochs} epochs x {self.steps_per_epoch} steps, global batch "
                         f"{self.global_batch}{processes}"),
            ("device", f"{self.device}, {self.precision} ({self.precision_reason}), channels_last "
                       f"{'on' if self.channels_last else 'off'}"),
            ("torch.compile", self.compile),
            ("memory", self.memory),
            ("time", self.time_estimate or "not estimated"),
            ("auto", self.auto),
            ("run folder", f"{self.output}{' (resumed)' if self.resume else ''}"),
        ]
        return "\n".join(f"{key:<14} {value}" for key, value in rows) + "\n(dry run: nothing was written)"


def steps_per_epoch(train_images: int, cfg: TrainConfig, world_size: int = 1) -> int:
    """Optimizer steps one process takes in an epoch, as its loader yields batches: each process gets
    ceil(N / world) images (DistributedSampler), full batches only once there is more than one."""
    per_process = -(-train_images // world_size)
    batches = per_process // cfg.batch_size if train_images > cfg.batch_size else 1
    steps = max(1, batches // cfg.accumulate_steps)
    return min(steps, cfg.max_steps_per_epoch) if cfg.max_steps_per_epoch else steps


def plan_run(model: nn.Module, dataset: ImageDataset, cfg: TrainConfig, preprocessing: Preprocessing,
             classifier: str, model_name: str, run: RunFolder, resume: bool, world_size: int = 1,
             estimate_time: bool = False) -> RunPlan:
    """Resolve every `auto` and decide everything the run will do; nothing is written or allocated. The
    caller found (and checked) the run folder."""
    cfg, chosen = resolve_defaults(cfg, preprocessing.input_size, len(dataset.train), dataset.counts()["train"],
                                   multi_label=dataset.task == MULTI_LABEL)
    device = parts.pick_device(cfg.device)
    amp_dtype, precision_reason = parts.precision_decision(cfg.precision, device)
    channels_last = cfg.channels_last if cfg.channels_last is not None else parts.channels_last_default(device)
    frozen = parts.frozen_modules(model, cfg.freeze, classifier)
    frozen_ids = {id(p) for m in frozen for p in m.parameters()}
    frozen_count = sum(p.numel() for p in model.parameters() if id(p) in frozen_ids)
    options = InputOptions(cfg.batch_size, cfg.augment, cfg.cache, cfg.pipeline, cfg.workers, channels_last,
                           cache_budget(cfg.cache_budget))
    pixels, pipeline = plan_storage(dataset, preprocessing, options)
    augment = resolve_preset(cfg.augment, preprocessing.input_size)
    steps = steps_per_epoch(len(dataset.train), cfg, world_size)
    compile_on, compile_reason = parts.compile_decision(cfg.compile, device, steps * cfg.epochs)
    memory = check_fits(probe(model, preprocessing.input_size, model_name), cfg.batch_size,
                        preprocessing.input_size, device, amp_dtype is not None)
    warmup = cfg.warmup_steps or int(round(cfg.warmup_epochs * steps))
    schedule = cfg.scheduler + (f" after {warmup} warmup steps" if warmup else "")
    lr = cfg.effective_lr
    plan = RunPlan(
        model=model_name, dataset=dataset.name, layout=dataset.layout, task=dataset.task, classes=list(dataset.classes),
        counts=dataset.counts(), data_fingerprint=dataset.fingerprint(), image_size=preprocessing.input_size,
        resize_size=preprocessing.resize_size, geometry=preprocessing.describe(), augment=augment, pixels=pixels,
        cache_budget=format_size(options.cache_budget), pipeline=pipeline,
        trainable_parameters=sum(p.numel() for p in model.parameters()) - frozen_count, frozen_parameters=frozen_count,
        optimizer=cfg.optimizer, lr=lr, body_lr=lr * cfg.body_lr_scale if cfg.freeze != "none" else lr,
        weight_decay=cfg.weight_decay, schedule=schedule, warmup_steps=warmup, epochs=cfg.epochs,
        steps_per_epoch=steps, world_size=world_size,
        global_batch=cfg.batch_size * cfg.accumulate_steps * world_size, device=str(device),
        precision=parts.precision_name(amp_dtype), precision_reason=precision_reason, channels_last=channels_last,
        compile=compile_reason, compile_on=compile_on, memory=memory,
        feature_cache=feature_cache.wanted(cfg, augment, distributed=world_size > 1), output=str(run.final),
        resume=resume, auto=", ".join(chosen) or "none", config=cfg.to_dict())
    if estimate_time:
        from zoo.engine.estimate import estimate

        guess = estimate(model, plan, len(dataset.eval))
        plan.time_estimate, plan.estimated_epoch_s = guess.describe(), guess.epoch_s
    return plan


def dry_run_target(cfg: TrainConfig, model_name: str, data_name: str, resume: str | Path | None) -> RunFolder:
    """The run folder a real run would use, checked as it would be (nothing is created)."""
    if resume is not None:
        return find_run(resume)
    run = RunFolder(cfg.output) if cfg.output else new_run_name(model_name, data_name)
    run.check_new_target(cfg.overwrite)
    return run
