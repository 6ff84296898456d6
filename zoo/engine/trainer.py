"""The fine-tune loop. Everything it needs (data, model, checkpoints, metrics) is prepared by
helpers; the loop itself is forward, loss, backward, step, schedule, log."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.engine import feature_cache, parts
from zoo.engine.checkpoint import atomic_write_text, load_resume_state, save_resume_state, save_weights, unwrap
from zoo.engine.config import TrainConfig
from zoo.engine.inputs import Inputs, build_inputs
from zoo.engine.metrics import EvalAccumulator, append_epoch, write_plots
from zoo.errors import TrainingError

log = logging.getLogger("zoo.engine")
CHECK_EVERY = 25  # steps between host syncs (NaN check, progress bar); none in between


@dataclass
class RunResult:
    run_dir: Path
    best_top1: float
    best_epoch: int
    epochs_run: int
    history: list[dict[str, Any]] = field(default_factory=list)


def fit(cfg: TrainConfig, resume: str | Path | None = None) -> RunResult:
    """Train cfg.model on cfg.data; see TrainConfig for every option."""
    started = time.perf_counter()
    dist = _DistributedContext.from_env()
    run_dir, created = _prepare_run_dir(cfg, resume, dist.is_main)
    try:
        run = _setup(cfg, resume, run_dir, dist)
    except BaseException:
        if created and dist.is_main:  # nothing of this run was written yet: leave no empty folder behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    if dist.is_main and resume is None:
        _start_run_folder(run_dir, cfg, run.split_file)
    return _train(cfg, run, run_dir, dist, started)


@dataclass
class _Run:
    """Everything the epoch loop needs, built (and validated) before the first step."""

    classes: list[str]
    split_file: dict[str, Any] | None
    model: nn.Module
    train_model: nn.Module  # the model, or only its head on cached features; wrapped for DDP/compile
    eval_model: nn.Module
    inputs: Inputs
    device: torch.device
    amp_dtype: torch.dtype | None
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler | None
    criterion: nn.Module
    frozen: list[nn.Module]
    steps_per_epoch: int
    loader_gen: torch.Generator
    writer: _RunWriter
    start_epoch: int = 0
    best_top1: float = -1.0
    best_epoch: int = -1


def _setup(cfg: TrainConfig, resume, run_dir: Path, dist: _DistributedContext) -> _Run:
    """Everything that can fail on user input fails here, before any training and before any file is written."""
    from zoo.data.api import create_dataset
    from zoo.models.api import create_model, find_classifier, model_info

    device = dist.device or parts.pick_device(cfg.device)
    amp_dtype = parts.pick_precision(cfg.precision, device)
    info = model_info(cfg.model)
    dataset = create_dataset(cfg.data, data_root=cfg.data_root, val_ratio=cfg.val_ratio, seed=cfg.seed)
    preprocessing = info.preprocessing(cfg.image_size)
    torch.manual_seed(cfg.seed)  # the same seed gives the same initial weights
    model = create_model(cfg.model, num_classes=dataset.num_classes, weights=cfg.weights)
    if resume is None:
        _check_head_fits(cfg, model, dataset)
    frozen = parts.frozen_modules(model, cfg.freeze, info.classifier)
    _check_input_size(model, cfg.model, preprocessing["input_size"], info.input_size)

    channels_last = cfg.channels_last if cfg.channels_last is not None else device.type == "cuda"
    loader_gen = torch.Generator()
    inputs = build_inputs(cfg, dataset, preprocessing, device, channels_last, loader_gen,
                          lambda source: dist.sampler(source, cfg.seed))
    steps_per_epoch = max(1, len(inputs.train) // cfg.accumulate_steps)
    if cfg.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)

    parts.set_frozen(frozen, True)
    head, body = parts.split_head_and_body(model, info.classifier)
    model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    optimizer = parts.build_optimizer(cfg, head, body, device)
    scheduler = parts.build_scheduler(cfg, optimizer, steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
    start_epoch, best_top1, best_epoch = 0, -1.0, -1
    if resume is not None:
        # a learning rate given on resume wins over the saved one (the schedule's shape is kept)
        base_lrs = [group["lr"] for group in parts.build_optimizer(cfg, head, body, device).param_groups]
        start_epoch, best_top1, best_epoch = _restore(run_dir, cfg, model, optimizer, scheduler, scaler, base_lrs)

    train_model = model
    if feature_cache.wanted(cfg, inputs.augment, dist.world_size > 1):
        head_attr, _ = find_classifier(model, info.classifier.split(".")[0])
        shortcut = feature_cache.head_only_inputs(model, head_attr, inputs, cfg, device, amp_dtype, loader_gen)
        if shortcut is not None:  # from here on the head alone trains and evaluates, on cached features
            train_model, inputs = shortcut
    eval_model = train_model
    train_model = _maybe_compile(dist.wrap(train_model), cfg, device, steps_per_epoch * (cfg.epochs - start_epoch))

    writer = _RunWriter(run_dir, dataset.classes, cfg.optimizer, {
        "model": cfg.model,
        "create_model": {"name": cfg.model, "num_classes": dataset.num_classes},
        "num_classes": dataset.num_classes,
        "classes": dataset.classes,
        "preprocessing": preprocessing,
        "training_inputs": {"augment": inputs.augment, "pipeline": inputs.pipeline},
        "dataset": {"name": dataset.name, "layout": dataset.layout, "root": dataset.root,
                    "eval_split": dataset.eval_split_name},
        "run": run_dir.name,
    })
    log.info("training %s on %s (%d classes, %d train / %d val images) on %s, %s, batch %d, %d epochs, "
             "augment %s (%s)", cfg.model, dataset.name, dataset.num_classes, inputs.train_images,
             inputs.eval_images, device, {None: "fp32"}.get(amp_dtype, str(amp_dtype).replace("torch.", "")),
             cfg.batch_size, cfg.epochs, inputs.augment, inputs.pipeline)
    return _Run(dataset.classes, dataset.split_file, model, train_model, eval_model, inputs, device, amp_dtype,
                optimizer, scheduler, scaler, nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing), frozen,
                steps_per_epoch, loader_gen, writer, start_epoch, best_top1, best_epoch)


def _train(cfg: TrainConfig, run: _Run, run_dir: Path, dist: _DistributedContext, started: float) -> RunResult:
    """The epoch loop: train, evaluate, keep best/last, log; early stop on patience."""
    history: list[dict[str, Any]] = []
    bad_epochs = 0
    device = run.device
    for epoch in range(run.start_epoch, cfg.epochs):
        if cfg.unfreeze_at is not None and epoch >= cfg.unfreeze_at and run.frozen:
            parts.set_frozen(run.frozen, False)
            log.info("epoch %d: unfreezing the body (lr x %g)", epoch + 1, cfg.body_lr_scale)
            run.frozen = []
        torch.manual_seed(cfg.seed * 100_003 + epoch)  # augmentation and dropout: exact on resume
        run.loader_gen.manual_seed(cfg.seed * 100_003 + epoch)
        run.inputs.train.set_epoch(epoch)
        t0 = time.perf_counter()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        try:
            train_stats = _train_one_epoch(run.train_model, run.inputs.train, run.criterion, run.optimizer,
                                           run.scheduler, run.scaler, cfg, device, run.amp_dtype, run.frozen, epoch,
                                           run.steps_per_epoch)
            epoch_time = time.perf_counter() - t0
            val = evaluate(run.eval_model, run.inputs.eval, run.criterion, device, run.amp_dtype, len(run.classes))
        except torch.OutOfMemoryError as exc:
            raise _out_of_memory(cfg, epoch) from exc
        row = {
            "epoch": epoch + 1, **train_stats, "val_loss": val["val_loss"], "val_top1": val["val_top1"],
            "val_top5": val["val_top5"], "lr": run.optimizer.param_groups[0]["lr"],
            "images_per_s": train_stats["images"] / epoch_time, "epoch_time_s": epoch_time,
            "elapsed_s": time.perf_counter() - started,  # since fit() began: data loading and warm-up included
            "peak_gpu_mem_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0,
        }
        improved = val["val_top1"] > run.best_top1
        if improved:
            run.best_top1, run.best_epoch, bad_epochs = val["val_top1"], epoch + 1, 0
        else:
            bad_epochs += 1
        history.append(row)
        if dist.is_main:
            run.writer.epoch_done(run.model, run.optimizer, run.scheduler, run.scaler, row, val, improved,
                                  run.best_top1, run.best_epoch)
        log.info("epoch %d/%d  train loss %.4f top-1 %.3f | val loss %.4f top-1 %.3f top-5 %.3f | %.0f img/s, %.1f s%s",
                 epoch + 1, cfg.epochs, row["train_loss"], row["train_top1"], row["val_loss"], row["val_top1"],
                 row["val_top5"], row["images_per_s"], epoch_time, "  (best)" if improved else "")
        if cfg.patience is not None and bad_epochs >= cfg.patience:
            log.info("early stop: val top-1 has not improved for %d epochs", cfg.patience)
            break
    if dist.is_main:
        run.writer.plots()
    dist.close()
    log.info("best val top-1 %.3f at epoch %d; run folder %s", run.best_top1, run.best_epoch, run_dir)
    return RunResult(run_dir, run.best_top1, run.best_epoch, len(history), history)


@torch.enable_grad()  # even if a caller switched autograd off globally
def _train_one_epoch(model, batches, criterion, optimizer, scheduler, scaler, cfg, device, amp_dtype,
                     frozen, epoch, steps_per_epoch) -> dict[str, float]:
    model.train()
    parts.keep_frozen_in_eval(frozen)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    seen = 0
    progress = _progress(cfg.quiet, f"epoch {epoch + 1}/{cfg.epochs}", steps_per_epoch)
    autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
    optimizer.zero_grad(set_to_none=True)
    step = 0
    for micro, (images, labels) in enumerate(batches):  # already on the device
        with autocast:
            logits = model(images)
            loss = criterion(logits, labels)
        scaled = loss / cfg.accumulate_steps
        (scaler.scale(scaled) if scaler else scaled).backward()
        loss_sum += loss.detach() * labels.numel()
        correct += (logits.detach().argmax(1) == labels).sum()
        seen += labels.numel()
        if (micro + 1) % cfg.accumulate_steps:
            continue
        if cfg.grad_clip:
            if scaler:
                scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        step += 1
        if step % CHECK_EVERY == 0 or step == steps_per_epoch:
            current = loss_sum.item() / seen  # the one host sync per CHECK_EVERY steps
            if not torch.isfinite(torch.tensor(current)):
                progress.stop()
                raise TrainingError(
                    f"loss became {current} in epoch {epoch + 1} by step {step}; the last good checkpoint "
                    "is kept. Lower --lr, use --grad-clip, or check the data"
                )
            progress.update(step, current, seen)
        if step >= steps_per_epoch:
            break
    progress.stop()
    return {"train_loss": loss_sum.item() / max(1, seen), "train_top1": correct.item() / max(1, seen), "images": seen}


@torch.no_grad()
def evaluate(model, batches, criterion, device, amp_dtype, num_classes) -> dict[str, Any]:
    model.eval()
    acc = EvalAccumulator(num_classes, device)
    autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
    for images, labels in batches:  # already on the device
        with autocast:
            logits = model(images).float()
        acc.update(logits, labels, nn.functional.cross_entropy(logits, labels, reduction="sum"))
    return acc.result()


class _progress:
    """A rich progress bar with loss, images/s and ETA; nothing at all in quiet mode."""

    def __init__(self, quiet: bool, title: str, total: int):
        self.bar = None
        self.t0 = time.perf_counter()
        if quiet:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                            TextColumn("loss {task.fields[loss]:.4f}  {task.fields[ips]:.0f} img/s"),
                            TimeRemainingColumn(), transient=True)
        self.task = self.bar.add_task(title, total=total, loss=float("nan"), ips=0.0)
        self.bar.start()

    def update(self, step: int, loss: float, seen: int) -> None:
        if self.bar:
            self.bar.update(self.task, completed=step, loss=loss, ips=seen / (time.perf_counter() - self.t0))

    def stop(self) -> None:
        if self.bar:
            self.bar.stop()
            self.bar = None


def _maybe_compile(model, cfg: TrainConfig, device: torch.device, total_steps: int):
    """torch.compile only where its warm-up (tens of seconds) is repaid within the run."""
    wanted = cfg.compile
    reason = "asked for" if wanted else "off (asked)"
    if wanted is None:
        wanted = device.type == "cuda" and total_steps >= 1000
        reason = (f"on: {total_steps} CUDA steps repay the warm-up" if wanted else
                  f"off: {'not on CUDA' if device.type != 'cuda' else f'only {total_steps} steps'}")
    log.info("torch.compile %s", reason)
    return torch.compile(model) if wanted else model


def _restore(run_dir: Path, cfg: TrainConfig, model, optimizer, scheduler, scaler, base_lrs) -> tuple[int, float, int]:
    """Model, optimizer, schedule and scaler state of the last finished epoch; (next epoch, best top-1, best epoch)."""
    model_state, state, meta = load_resume_state(run_dir)
    if meta.get("optimizer", cfg.optimizer) != cfg.optimizer:
        raise TrainingError(f"run {run_dir} was trained with {meta['optimizer']}; resume it with the same optimizer")
    unwrap(model).load_state_dict(model_state)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scheduler.base_lrs = base_lrs
    if scaler is not None and state["scaler"]:
        scaler.load_state_dict(state["scaler"])
    log.info("resuming %s at epoch %d of %d", run_dir, meta["epoch"] + 2, cfg.epochs)
    return meta["epoch"] + 1, meta["best_top1"], meta["best_epoch"]


@dataclass
class _RunWriter:
    """What the run folder gets after each epoch (rank 0 only); every file written atomically."""

    run_dir: Path
    classes: list[str]
    optimizer_name: str
    meta_base: dict[str, Any]
    latest_pointed: bool = False

    def epoch_done(self, model, optimizer, scheduler, scaler, row: dict[str, Any], val: dict[str, Any],
                   improved: bool, best_top1: float, best_epoch: int) -> None:
        per_class = dict(zip(self.classes, val["per_class_accuracy"]))
        meta = {**self.meta_base, "epoch": row["epoch"], "per_class_accuracy": per_class,
                "metrics": {k: row[k] for k in ("val_top1", "val_top5", "val_loss")}}
        if improved:
            save_weights(self.run_dir / "best", model, meta)
        save_weights(self.run_dir / "last", model, meta)
        save_resume_state(self.run_dir, model, optimizer, scheduler, scaler,
                          {**meta, "epoch": row["epoch"] - 1, "best_top1": best_top1, "best_epoch": best_epoch,
                           "optimizer": self.optimizer_name})
        append_epoch(self.run_dir, row)
        if not self.latest_pointed:  # runs/latest only ever names a run that has a checkpoint
            _point_latest(self.run_dir)
            self.latest_pointed = True
        _write_json(self.run_dir / "final_metrics.json", {
            "best_epoch": best_epoch, "best_val_top1": best_top1, "last_epoch": row["epoch"],
            "per_class_accuracy": per_class, "confusion_matrix": val["confusion_matrix"], "classes": self.classes,
        })

    def plots(self) -> None:
        final = self.run_dir / "final_metrics.json"
        if final.is_file():
            write_plots(self.run_dir, self.classes, json.loads(final.read_text())["confusion_matrix"])


@torch.no_grad()
def _check_input_size(model: nn.Module, name: str, size: int, native: int) -> None:
    """One image through the model (still on the CPU) before the data is loaded, so a size it cannot
    take (ViTs are built for one) is a clear error. The model's own size needs no check."""
    if size == native:
        return
    training = model.training
    model.eval()
    try:
        model(torch.zeros(1, 3, size, size))
    except (RuntimeError, AssertionError, ValueError) as exc:
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise TrainingError(f"{name} cannot take {size}x{size} images ({first_line}); "
                            f"use --image-size {native} or another model") from exc
    finally:
        model.train(training)


def _out_of_memory(cfg: TrainConfig, epoch: int) -> TrainingError:
    smaller = max(1, cfg.batch_size // 2)
    return TrainingError(
        f"out of GPU memory in epoch {epoch + 1} at batch size {cfg.batch_size}; use --batch-size {smaller} "
        f"with --accumulate-steps {cfg.accumulate_steps * 2} (same effective batch) or a smaller --image-size; "
        "the last good checkpoint is kept"
    )


def _check_head_fits(cfg: TrainConfig, model: nn.Module, dataset) -> None:
    """A weights file whose head was trained for other classes is a mistake unless asked for."""
    report = getattr(model, "zoo_load_report", None)
    if report is None or not report.dropped or str(cfg.weights).upper() == "DEFAULT" or cfg.new_head:
        return  # published weights always get a new head for the dataset's classes
    raise TrainingError(
        f"--weights {cfg.weights} has a head for another number of classes than {dataset.name} "
        f"({dataset.num_classes}); pass --new-head to keep its body and train a new head"
    )


def _prepare_run_dir(cfg: TrainConfig, resume, is_main: bool) -> tuple[Path, bool]:
    """The run folder, checked writable; (folder, whether this call created it). Nothing is written yet."""
    if resume is not None:
        return resolve_run(resume), False
    if cfg.output:
        run_dir = Path(cfg.output)
    else:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        safe = lambda s: "".join(c if c.isalnum() or c in "-_" else "-" for c in Path(str(s)).name)  # noqa: E731
        base = Path("runs") / f"{safe(cfg.model)}-{safe(cfg.data)}-{stamp}"
        run_dir, n = base, 1
        while run_dir.exists():  # two runs started within the same second
            n += 1
            run_dir = base.with_name(f"{base.name}-{n}")
    if not is_main:
        return run_dir, False
    if (run_dir / "last.safetensors").exists() and not cfg.overwrite:
        raise TrainingError(f"{run_dir} already holds a run; use --resume {run_dir}, --overwrite or another --output")
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise TrainingError(f"output folder {run_dir} is not writable ({exc.strerror}); choose another --output") from exc
    return run_dir, created


def _start_run_folder(run_dir: Path, cfg: TrainConfig, split_file: dict[str, Any] | None) -> None:
    """Setup succeeded: clear what an overwritten run left, then save the config (and zoo's split)."""
    for stale in ("metrics.jsonl", "metrics.csv", "best.safetensors", "best.json", "final_metrics.json"):
        (run_dir / stale).unlink(missing_ok=True)
    cfg.save(run_dir / "config.json")
    if split_file:
        _write_json(run_dir / "split.json", split_file)


def resolve_run(run: str | Path | None) -> Path:
    """A run folder from a path, a name under runs/, or None/'latest' for runs/latest."""
    candidates = [Path("runs") / "latest"] if run in (None, "latest") else [Path(run), Path("runs") / str(run)]
    for path in candidates:
        if (path / "config.json").is_file():
            return path.resolve()
    raise TrainingError(f"no run folder at {candidates[0]}; train one with `zoo finetune` or pass a run folder")


def _point_latest(run_dir: Path) -> None:
    latest = run_dir.parent / "latest"
    tmp = run_dir.parent / f".latest-{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_dir.resolve(), target_is_directory=True)
        os.replace(tmp, latest)
    except OSError:
        pass  # no symlinks here: `latest` simply is not updated


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2))


@dataclass
class _DistributedContext:
    """torchrun support: DDP over nccl (CUDA) or gloo (CPU), a DistributedSampler, rank 0 writes."""

    world_size: int = 1
    rank: int = 0
    device: torch.device | None = None

    @classmethod
    def from_env(cls) -> _DistributedContext:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        import torch.distributed as td

        local = int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = torch.cuda.is_available()
        if not td.is_initialized():
            td.init_process_group("nccl" if use_cuda else "gloo")
        device = torch.device("cuda", local) if use_cuda else torch.device("cpu")
        if use_cuda:
            torch.cuda.set_device(device)
        return cls(world, td.get_rank(), device)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sampler(self, dataset, seed: int):
        if self.world_size == 1:
            return None
        from torch.utils.data.distributed import DistributedSampler

        return DistributedSampler(dataset, num_replicas=self.world_size, rank=self.rank, shuffle=True, seed=seed)

    def wrap(self, model: nn.Module) -> nn.Module:
        if self.world_size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device is not None and self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def close(self) -> None:
        if self.world_size > 1:
            import torch.distributed as td

            td.barrier()
            td.destroy_process_group()
