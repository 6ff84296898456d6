"""Everything a training run needs before its first step, built and checked up front.

``training_session`` turns (model, dataset, config, preprocessing) into a ``Training``: the run
folder (named, locked, staged), device and precision, frozen parts, the input pipeline, optimizer
and schedule, the restored state of a resumed run, the compile decision and the writer. Everything
that can fail on user input fails here, before any file is written; a run that fails before its
first checkpoint leaves nothing behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.data.dataset import SINGLE_LABEL, ImageDataset
from zoo.data.decoded_cache import cache_budget
from zoo.data.inputs import InputOptions, Inputs, build_inputs
from zoo.engine import feature_cache, parts, tasks
from zoo.engine.callbacks import CallbackList, EpochResult, create_callback
from zoo.engine.checkpoint import load_resume_state, unwrap
from zoo.engine.config import TrainConfig
from zoo.engine.console import run_output
from zoo.engine.distributed import DistributedContext
from zoo.engine.plan import RunPlan, plan_run
from zoo.engine.defaults import IMBALANCED, imbalance_ratio
from zoo.engine.recipes import DistributedBalancedSampler, WeightsEma, balanced_sampler, batch_mixing, class_weights
from zoo.engine.writers import Checkpoints, ConsoleLine, EarlyStopping, MetricsFiles, TensorBoard
from zoo.errors import Interrupted, TrainingError
from zoo.files import make_folder, remove_empty_folders
from zoo.runs import (CONFIG, LAST, SPLIT, TENSORBOARD, CheckpointMeta, RunFolder, claim_new_run, find_run,
                      new_run_name)
from zoo.specs import Preprocessing

log = logging.getLogger("zoo.engine")


SELECTION_KEYS = {"top1": "val_top1", "balanced_accuracy": "val_balanced_accuracy", "macro_f1": "val_macro_f1",
                  "map": "val_map"}
SELECTION_NAMES = {"top1": "top-1", "balanced_accuracy": "balanced accuracy", "macro_f1": "macro-F1", "map": "mAP"}


@dataclass
class RunResult:
    run_dir: Path
    best_top1: float
    best_epoch: int
    epochs_run: int
    history: list[EpochResult] = field(default_factory=list)  # the epochs this call trained


@dataclass
class Training:
    """The state the epoch loop works on."""

    cfg: TrainConfig
    plan: RunPlan
    run: RunFolder
    classes: list[str]
    model: nn.Module  # the whole model: what checkpoints hold
    train_model: nn.Module  # the model, or only its head on cached features; wrapped for DDP/compile
    eval_model: nn.Module
    inputs: Inputs
    device: torch.device
    amp_dtype: torch.dtype | None
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    frozen: list[nn.Module]
    steps_per_epoch: int
    loader_gen: torch.Generator
    dist: DistributedContext
    callbacks: CallbackList
    started: float
    ema: WeightsEma | None = None
    mixing: Any = None  # MixUp/CutMix on whole batches -> soft targets
    task: str = SINGLE_LABEL
    start_epoch: int = 0
    epoch: int = 0
    best_top1: float = -1.0
    best_epoch: int = -1
    history: list[EpochResult] = field(default_factory=list)

    def begin_epoch(self, epoch: int) -> None:
        cfg = self.cfg
        self.epoch = epoch
        if cfg.unfreeze_at is not None and epoch >= cfg.unfreeze_at and self.frozen:
            parts.set_frozen(self.frozen, False)
            log.info("epoch %d: unfreezing the body (lr x %g)", epoch + 1, cfg.body_lr_scale)
            self.frozen = []
        torch.manual_seed(cfg.seed * 100_003 + epoch)  # augmentation and dropout: exact on resume
        self.loader_gen.manual_seed(cfg.seed * 100_003 + epoch)
        self.inputs.train.set_epoch(epoch)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def weights_to_keep(self) -> nn.Module:
        """What checkpoints hold: the model that was evaluated (the EMA's weights when there is one)."""
        return self.ema.module if self.ema is not None else self.model

    @property
    def evaluated(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.eval_model

    def extra_state(self) -> dict[str, Any]:
        """Resume state beyond optimizer, schedule and scaler (recipes that keep their own)."""
        extra: dict[str, Any] = {"world_size": self.dist.world_size}
        if self.ema is not None:
            extra["ema"] = self.ema.state_dict()
        return extra

    def end_epoch(self, epoch: int, train: dict[str, float], val: dict[str, Any]) -> bool:
        """Hand the finished epoch to the callbacks (metrics, checkpoint, epoch line, trackers, early
        stopping; rank 0 only); True when one of them asked to stop."""
        score = val[SELECTION_KEYS[self.cfg.select_metric]]
        improved = score > self.best_top1
        if improved:
            self.best_top1, self.best_epoch = score, epoch + 1
        images, seconds = self.dist.total(train["images"], train["epoch_time_s"])
        compiled = self.train_model is not self.eval_model and hasattr(self.train_model, "_orig_mod")
        result = EpochResult(
            epoch=epoch + 1, epochs=self.cfg.epochs, train_loss=train["train_loss"], train_top1=train["train_top1"],
            val_loss=val["val_loss"], val_top1=val["val_top1"], val_top5=val["val_top5"],
            val_balanced_accuracy=val["val_balanced_accuracy"], val_macro_f1=val["val_macro_f1"],
            val_map=val.get("val_map"), val_micro_f1=val.get("val_micro_f1"), val_exact_match=val.get("val_exact_match"),
            lr=self.optimizer.param_groups[0]["lr"], images=int(images), images_per_s=images / max(seconds, 1e-9),
            epoch_time_s=train["epoch_time_s"], data_wait_frac=train["data_wait_frac"],
            peak_gpu_mem_mb=torch.cuda.max_memory_allocated(self.device) / 2**20 if self.device.type == "cuda" else 0.0,
            elapsed_s=time.perf_counter() - self.started,  # since fit() began: data loading and warm-up included
            compiled_graphs=parts.compiled_graphs() if compiled else None,  # more after epoch 1 means recompiles
            improved=improved, best_top1=self.best_top1, best_epoch=self.best_epoch,
            per_class_accuracy=val["per_class_accuracy"], confusion_matrix=val["confusion_matrix"],
            multilabel=val.get("multilabel", {}))
        self.history.append(result)
        stop = self.callbacks.call("on_epoch_end", result) if self.dist.is_main else None
        stop = self.dist.from_main(stop)  # every process stops together
        if stop:
            log.info("stopping after epoch %d: %s", epoch + 1, stop)
        return bool(stop)

    def finish(self) -> RunResult:
        result = RunResult(self.run.final, self.best_top1, self.best_epoch, len(self.history), self.history)
        if self.dist.is_main:
            self.callbacks.call("on_fit_end", result)
        log.info("best val %s %.3f at epoch %d; run folder %s", SELECTION_NAMES[self.cfg.select_metric],
                 self.best_top1, self.best_epoch, self.run.final)
        return result


@contextmanager
def training_session(model: nn.Module, dataset: ImageDataset, cfg: TrainConfig, preprocessing: Preprocessing | None,
                     classifier: str | None, model_name: str | None, resume: str | Path | None,
                     callbacks: list[Any] = ()) -> Iterator[Training]:
    """The run folder held for the run, the plan, a checked ``Training``, and what happens when it fails."""
    from zoo.models.api import find_classifier

    started = time.perf_counter()
    dist = DistributedContext.from_env()
    model_name = model_name or type(model).__name__
    preprocessing = preprocessing or Preprocessing.for_size(cfg.image_size or 224)
    classifier = classifier or find_classifier(model, None)[0]
    dataset = dataset.with_task(cfg.task).limited(cfg.limit_train, cfg.limit_val, cfg.seed)  # no-ops after finetune()
    with run_output(cfg.quiet), ExitStack() as held:
        run = open_run(cfg, model_name, dataset.name, resume, dist, held)
        if dist.is_main:
            run.recover_interrupted_promote()
        if resume is not None:
            check_resume_matches(run, model_name, dataset, preprocessing)
        elif dist.is_main:
            run.check_new_target(cfg.overwrite)
        if dist.is_main:
            run.clean_stale()  # only now that the run may start, and only what zoo provably left
        plan = plan_run(model, dataset, cfg, preprocessing, classifier, model_name, run, resume is not None,
                        dist.world_size, estimate_time=not cfg.quiet and dist.is_main)
        user_callbacks = [*(create_callback(spec) for spec in plan.train_config().callbacks), *callbacks]
        if plan.auto != "none":
            log.info("auto: %s", plan.auto)
        if plan.time_estimate:
            log.info("time: %s", plan.time_estimate)
        training = prepare(model, dataset, plan, preprocessing, classifier, run, dist, started, user_callbacks)
        try:
            if dist.is_main:
                start_run_files(run, training.cfg, dataset, staged=resume is None)
                training.callbacks.call("on_fit_start", plan)
            yield training
        except BaseException as exc:
            if dist.is_main:
                training.callbacks.call("on_exception", exc)
            if isinstance(exc, torch.OutOfMemoryError):
                raise out_of_memory(training.cfg, training.epoch) from exc
            if isinstance(exc, KeyboardInterrupt) and not isinstance(exc, Interrupted):
                raise interrupted(run, training) from exc
            lost = dist.lost_peer(exc, run.final)
            if lost is not None:
                raise lost from exc
            raise
        finally:
            if dist.is_main:
                run.abandon_staging()  # failed before its first checkpoint: leave nothing (no-op once promoted)
            dist.close()


def open_run(cfg: TrainConfig, model_name: str, data_name: str, resume: str | Path | None,
             dist: DistributedContext, held: ExitStack) -> RunFolder:
    """The run folder, locked in ``held`` by rank 0. Folders made above a new run are removed again
    (once the lock is released) if the run ends with nothing in them."""
    if resume is not None:
        run = find_run(resume)
        if dist.is_main:
            held.enter_context(run.locked())
        return run
    run = RunFolder(cfg.output) if cfg.output else new_run_name(model_name, data_name)
    if not dist.is_main:
        return run
    held.callback(remove_empty_folders, make_folder(run.final.parent, TrainingError))
    if cfg.output:
        held.enter_context(run.locked())
        return run
    return claim_new_run(model_name, data_name, held, root=run.final.parent)  # same-second runs: a name each


def prepare(model: nn.Module, dataset: ImageDataset, plan: RunPlan, preprocessing: Preprocessing, classifier: str,
            run: RunFolder, dist: DistributedContext, started: float, user_callbacks: list[Any]) -> Training:
    """The plan carried out: device, layout, inputs, optimizer, schedule, restored state, compile, callbacks."""
    from zoo.models.api import find_classifier

    cfg = plan.train_config()
    device = dist.device or torch.device(plan.device)
    amp_dtype = parts.PRECISIONS[plan.precision]
    head_attr, _ = find_classifier(model, classifier.split(".")[0] or None)
    frozen = parts.frozen_modules(model, cfg.freeze, classifier)
    loader_gen = torch.Generator()
    options = InputOptions(cfg.batch_size, cfg.augment, cfg.cache, cfg.pipeline, cfg.workers, plan.channels_last,
                           cache_budget(cfg.cache_budget), cfg.seed)
    inputs = build_inputs(dataset, preprocessing, options, device, loader_gen, sampler_for(cfg, dist, loader_gen))
    steps_per_epoch = min(plan.steps_per_epoch, max(1, len(inputs.train) // cfg.accumulate_steps))

    parts.set_frozen(frozen, True)
    head, body = parts.split_head_and_body(model, classifier)
    model.to(device, memory_format=torch.channels_last if plan.channels_last else torch.contiguous_format)
    optimizer = parts.build_optimizer(cfg, head, body, device)
    scheduler = parts.build_scheduler(cfg, optimizer, steps_per_epoch, plan.warmup_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    progress = {"epoch": -1, "best_top1": -1.0, "best_epoch": -1}
    if plan.resume:
        # a learning rate given on resume wins over the saved one (the schedule's shape is kept)
        base_lrs = [group["lr"] for group in parts.build_optimizer(cfg, head, body, device).param_groups]
        progress = restore(run, cfg, model, optimizer, scheduler, scaler, base_lrs, plan)

    train_model = model
    if feature_cache.wanted(cfg, inputs.augment, dist.active):
        shortcut = feature_cache.head_only_inputs(model, head_attr, inputs, cfg, device, amp_dtype, loader_gen)
        if shortcut is not None:  # from here on the head alone trains and evaluates, on cached features
            train_model, inputs = shortcut
    eval_model = train_model
    ema = None
    if cfg.ema != "off":
        if train_model is not model:
            log.info("--ema %s left out: the head trains alone on cached features", cfg.ema)
        else:
            ema = WeightsEma(model, float(cfg.ema))
            if plan.resume and "ema" in progress.get("extra", {}):
                ema.load_state_dict(progress["extra"]["ema"])
    mixing = batch_mixing(cfg.mixup, cfg.cutmix, dataset.num_classes)
    train_model = parts.maybe_compile(dist.wrap(train_model), plan.compile_on, plan.compile, device)

    meta = CheckpointMeta(
        model=plan.model, num_classes=dataset.num_classes, classes=list(dataset.classes), preprocessing=preprocessing,
        task=dataset.task, threshold=cfg.threshold,
        dataset={"name": dataset.name, "layout": dataset.layout, "eval_split": dataset.eval_split_name,
                 "fingerprint": plan.data_fingerprint},
        training_inputs={"augment": inputs.augment, "pipeline": inputs.pipeline}, run=run.name)
    log.info("training %s on %s (%d classes, %d train / %d val images) on %s, %s (%s), %s, batch %d, %d epochs, "
             "augment %s (%s)", plan.model, dataset.name, dataset.num_classes, inputs.train_images,
             inputs.eval_images, device, plan.precision, plan.precision_reason,
             "channels_last" if plan.channels_last else "NCHW", cfg.batch_size, cfg.epochs, inputs.augment,
             inputs.pipeline)
    weights = class_weights(cfg.class_weights, dataset.counts()["train"])
    criterion = tasks.criterion(dataset.task, weights.to(device) if weights is not None else None,
                                cfg.label_smoothing)
    callbacks = CallbackList([])
    training = Training(cfg, plan, run, list(dataset.classes), model, train_model, eval_model, inputs, device,
                        amp_dtype, optimizer, scheduler, scaler, criterion, frozen, steps_per_epoch, loader_gen, dist,
                        callbacks, started, ema, mixing, dataset.task, start_epoch=progress["epoch"] + 1,
                        best_top1=progress["best_top1"], best_epoch=progress["best_epoch"])
    callbacks.callbacks = builtin_callbacks(training, meta, callbacks) + user_callbacks
    if cfg.patience is not None:  # last: it sees what every other callback saw
        callbacks.callbacks.append(EarlyStopping(cfg.patience))
    return training


def sampler_for(cfg: TrainConfig, dist: DistributedContext, generator: torch.Generator):
    """The order of training images: shuffled (split over processes under torchrun) or class-balanced."""
    if cfg.sampler != "balanced":
        return lambda source: dist.sampler(source, cfg.seed)

    def labels_of(source):
        return source.labels if hasattr(source, "labels") else source.source.labels

    if dist.active:
        return lambda source: DistributedBalancedSampler(labels_of(source), dist.world_size, dist.rank, cfg.seed)
    return lambda source: balanced_sampler(labels_of(source), generator)


def builtin_callbacks(training: Training, meta: CheckpointMeta, callbacks: CallbackList) -> list[Any]:
    """zoo's own, first in the list; the metrics files and the checkpoint writer may fail the run."""
    cfg, run = training.cfg, training.run
    metrics = MetricsFiles(run, meta.classes)
    checkpoints = Checkpoints(run, meta, training, cfg.optimizer, callbacks)
    callbacks.essential = {id(metrics), id(checkpoints)}
    chosen = [metrics, checkpoints, ConsoleLine(imbalance_ratio(training.plan.counts.get("train")) > IMBALANCED)]
    if cfg.tensorboard:
        chosen.append(TensorBoard(run.final / TENSORBOARD))
    return chosen


def start_run_files(run: RunFolder, cfg: TrainConfig, dataset: ImageDataset, staged: bool) -> None:
    """Setup succeeded: the config (and zoo's split), in a staging folder for a new run."""
    if staged:
        run.begin_staging()
    run.write_json(CONFIG, cfg.to_dict())
    if dataset.split_record:
        run.write_json(SPLIT, dataset.split_record)


def restore(run: RunFolder, cfg: TrainConfig, model, optimizer, scheduler, scaler, base_lrs,
            plan: RunPlan) -> dict[str, Any]:
    """Model, optimizer, schedule and scaler state of the last finished epoch; its progress record."""
    model_state, state, progress = load_resume_state(run.final)
    progress = {**progress, "extra": state.get("extra", {})}
    before = progress["extra"].get("world_size", 1)
    if before != plan.world_size:
        log.info("resuming with %d processes where the run had %d: the global batch is %d images (was %d); the "
                 "learning rate is unchanged (pass --lr to scale it)", plan.world_size, before, plan.global_batch,
                 plan.global_batch // plan.world_size * before)
    if progress.get("optimizer", cfg.optimizer) != cfg.optimizer:
        raise TrainingError(f"run {run.final} was trained with {progress['optimizer']}; resume it with the same "
                            "optimizer")
    done = progress["epoch"] + 1
    if done >= cfg.epochs:
        raise TrainingError(f"run {run.final} finished at epoch {done} of {done}; pass --epochs N (more than "
                            f"{done}) to train it further")
    unwrap(model).load_state_dict(model_state)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scheduler.base_lrs = base_lrs
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    log.info("resuming %s at epoch %d of %d", run.final, done + 1, cfg.epochs)
    return progress


def check_resume_matches(run: RunFolder, model_name: str, dataset: ImageDataset, preprocessing: Preprocessing) -> None:
    """The run is continued with the model, classes, data and preprocessing it was trained with, or not at all."""
    meta_file = run.final / f"{LAST}.json"
    if not meta_file.is_file():
        return  # no finished epoch: load_resume_state says so
    saved = CheckpointMeta.load(meta_file)
    problems = []
    if saved.model != model_name:
        problems.append(f"model {saved.model} (not {model_name})")
    if saved.classes != list(dataset.classes):
        problems.append(f"{len(saved.classes)} classes {_few(saved.classes)} (not {_few(dataset.classes)})")
    elif saved.dataset.get("fingerprint") not in (None, dataset.fingerprint()):
        problems.append(f"other images: the data given ({dataset.name}) is not the data the run trained and "
                        "validated on")
    if saved.preprocessing != preprocessing:
        problems.append(f"input size {saved.preprocessing.input_size} / resize {saved.preprocessing.resize_size}")
    if problems:
        raise TrainingError(f"run {run.final} was trained with {'; '.join(problems)}; resume it with what it was "
                            "trained with, or start a new run (nothing was changed)")


def out_of_memory(cfg: TrainConfig, epoch: int) -> TrainingError:
    smaller = max(1, cfg.batch_size // 2)
    return TrainingError(
        f"out of GPU memory in epoch {epoch + 1} at batch size {cfg.batch_size}; use --batch-size {smaller} "
        f"with --accumulate-steps {cfg.accumulate_steps * 2} (same effective batch) or a smaller --image-size; "
        "the last good checkpoint is kept"
    )


def interrupted(run: RunFolder, training: Training) -> TrainingError:
    """What a Ctrl-C leaves: the run's last finished epoch, or nothing at all."""
    if training.history or training.start_epoch > 0:
        done = training.start_epoch + len(training.history)
        return Interrupted(f"interrupted in epoch {training.epoch + 1}; run {run.final} keeps epoch {done} "
                           f"(zoo finetune --resume {run.final} goes on)")
    return Interrupted("interrupted before the first epoch finished; nothing was kept (no run folder is left): "
                       "start it again")


def _few(names: list[str], n: int = 3) -> str:
    return "(" + ", ".join(names[:n]) + (", ..." if len(names) > n else "") + ")"
