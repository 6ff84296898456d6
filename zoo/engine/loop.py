"""The fine-tune loop: any nn.Module on any ImageDataset. Everything else (run folder, data,
optimizer, checkpoints, metrics) is prepared and recorded by zoo.engine.setup."""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.data.dataset import SINGLE_LABEL, ImageDataset
from zoo.engine.config import TrainConfig
from zoo.engine import parts, tasks
from zoo.engine.parts import autocast
from zoo.engine.setup import RunResult, Training, training_session
from zoo.errors import TrainingError
from zoo.progress import progress_bar
from zoo.specs import Preprocessing


def fit(model: nn.Module, dataset: ImageDataset, cfg: TrainConfig, preprocessing: Preprocessing | None = None, *,
        classifier: str | None = None, model_name: str | None = None, resume: str | Path | None = None,
        callbacks: list[Any] = ()) -> RunResult:
    """Train ``model`` on ``dataset`` as ``cfg`` says, keeping best/last checkpoints in a run folder.

    ``preprocessing`` (default: ImageNet mean/std at cfg.image_size or 224) is what checkpoints carry;
    ``classifier`` names the head attribute (default: fc, classifier, head or heads); ``model_name`` is
    recorded to rebuild the model for export (default: its class name). ``resume`` continues a run.
    ``callbacks`` are objects with any of zoo.Callback's hooks, called after zoo's own (and after those
    ``cfg.callbacks`` names).
    """
    with training_session(model, dataset, cfg, preprocessing, classifier, model_name, resume, callbacks) as t:
        cfg = t.cfg
        for epoch in range(t.start_epoch, cfg.epochs):
            t.begin_epoch(epoch)
            train = train_one_epoch(t, epoch)
            val = evaluate(t.evaluated, t.inputs.eval, t.device, t.amp_dtype, len(t.classes), t.task, cfg.threshold)
            if t.end_epoch(epoch, train, val):  # checkpoint, metrics, epoch line; True: early stop
                break
        return t.finish()


@torch.enable_grad()  # even if a caller switched autograd off globally
def train_one_epoch(t: Training, epoch: int) -> dict[str, float]:
    model, cfg = t.train_model, t.cfg
    model.train()
    parts.keep_frozen_in_eval(t.frozen)
    loss_sum = torch.zeros((), device=t.device)
    correct = torch.zeros((), device=t.device, dtype=torch.int64)
    seen, step, waited, started = 0, 0, 0.0, time.perf_counter()
    t.optimizer.zero_grad(set_to_none=True)
    batches = iter(t.inputs.train)
    with progress_bar(f"epoch {epoch + 1}/{cfg.epochs}", t.steps_per_epoch, not cfg.quiet and t.dist.is_main,
                      cfg.log_every) as progress:
        for micro in range(t.steps_per_epoch * cfg.accumulate_steps):
            tick = time.perf_counter()
            images, labels = next(batches)  # already on the device
            waited += time.perf_counter() - tick
            targets = labels
            if t.mixing is not None:  # soft targets; top-1 counts the dominant label of each mixed image
                images, targets = t.mixing(images, labels)
                labels = targets if labels.ndim == 2 else targets.argmax(1)
            stepping = (micro + 1) % cfg.accumulate_steps == 0
            with nullcontext() if stepping else t.dist.no_sync(model):  # all-reduce once, on the stepping micro-batch
                with autocast(t.device, t.amp_dtype):
                    logits = model(images)
                    loss = t.criterion(logits, targets)
                t.scaler.scale(loss / cfg.accumulate_steps).backward()
            loss_sum += loss.detach() * len(labels)
            correct += tasks.hits(t.task, logits.detach(), labels, cfg.threshold)
            seen += len(labels)
            if not stepping:
                continue
            if cfg.grad_clip:
                t.scaler.unscale_(t.optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            t.scaler.step(t.optimizer)
            t.scaler.update()
            t.optimizer.zero_grad(set_to_none=True)
            t.scheduler.step()
            if t.ema is not None:
                t.ema.update(t.model)
            step += 1
            if progress.due() or step == t.steps_per_epoch:  # the only host syncs: about one a second
                running = finite_loss(loss_sum, seen, epoch, step)
                progress.show(step, f"loss {running:.4f}  {seen / (time.perf_counter() - started):.0f} img/s")
    elapsed = time.perf_counter() - started
    return {"train_loss": loss_sum.item() / max(1, seen), "train_top1": correct.item() / max(1, seen),
            "images": seen, "images_per_s": seen / elapsed, "epoch_time_s": elapsed, "data_wait_frac": waited / elapsed}


@torch.no_grad()
def evaluate(model, batches, device: torch.device, amp_dtype: torch.dtype | None, num_classes: int,
             task: str = SINGLE_LABEL, threshold: float = 0.5) -> dict:
    model.eval()
    acc = tasks.accumulator(task, num_classes, device, threshold)
    for images, labels in batches:  # already on the device
        with autocast(device, amp_dtype):
            logits = model(images).float()
        acc.update(logits, labels, tasks.eval_loss_sum(task, logits, labels))
    return acc.result()


def finite_loss(loss_sum: torch.Tensor, seen: int, epoch: int, step: int) -> float:
    current = loss_sum.item() / max(1, seen)
    if not torch.isfinite(torch.tensor(current)):
        raise TrainingError(f"loss became {current} in epoch {epoch + 1} by step {step}; the last good checkpoint "
                            "is kept. Lower --lr, use --grad-clip, or check the data")
    return current
