"""zoo's own callbacks: what a run writes and shows after each epoch (rank 0 only).

They run in this order, before any user or plugin callback: metrics rows first (a resumed epoch
replaces its row, so a kill between the row and the checkpoint loses nothing), then the checkpoint
(weights, resume state, final metrics; the run folder takes its place at the first one), the
epoch line, and TensorBoard. Early stopping runs last. File names belong to zoo.runs; every file
is written atomically.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.engine.callbacks import Callback, EpochResult, StopTraining
from zoo.runs import BEST, FINAL_METRICS, LAST, TENSORBOARD, CheckpointMeta, RunFolder

if TYPE_CHECKING:
    from zoo.engine.callbacks import CallbackList


class MetricsFiles(Callback):
    """metrics.jsonl and metrics.csv, one row per epoch (EpochResult.metrics()); curves and the confusion
    matrix as PNGs when the run ends."""

    def __init__(self, run: RunFolder, classes: list[str]) -> None:
        self.run, self.classes = run, classes

    def on_epoch_end(self, result: EpochResult) -> None:
        from zoo.engine.metrics import append_epoch

        append_epoch(self.run, result.metrics())

    def on_fit_end(self, result) -> None:
        from zoo.engine.metrics import write_plots

        final = self.run.file(FINAL_METRICS)
        if final.is_file():
            write_plots(self.run, self.classes, json.loads(final.read_text())["confusion_matrix"])


class Checkpoints(Callback):
    """best/last weights with their metadata, the resume state, final_metrics.json; then tells the other
    callbacks (on_checkpoint). The first checkpoint promotes the staging folder and points runs/latest."""

    def __init__(self, run: RunFolder, meta: CheckpointMeta, state: Any, optimizer_name: str,
                 callbacks: CallbackList) -> None:
        self.run, self.meta, self.state, self.optimizer_name = run, meta, state, optimizer_name
        self.callbacks = callbacks
        self.latest_pointed = False

    def on_epoch_end(self, result: EpochResult) -> None:
        from zoo.engine.checkpoint import save_resume_state, save_weights

        t = self.state  # the Training: model, optimizer, schedule, scaler, EMA
        per_class = dict(zip(self.meta.classes, result.per_class_accuracy))
        scores = {"val_top1": result.val_top1, "val_top5": result.val_top5, "val_loss": result.val_loss}
        if result.multilabel:  # the tuned thresholds of the epoch the weights come from
            scores.update(val_map=result.val_map, val_micro_f1=result.val_micro_f1,
                          val_exact_match=result.val_exact_match, val_macro_f1=result.val_macro_f1)
        meta = replace(self.meta, epoch=result.epoch, per_class_accuracy=per_class, metrics=scores,
                       thresholds=list(result.multilabel.get("tuned_thresholds", [])))
        weights = t.weights_to_keep()  # the EMA's when there is one: what was evaluated
        written = []
        if result.improved:
            save_weights(self.run.path / BEST, weights, meta)
            written.append(BEST)
        save_weights(self.run.path / LAST, weights, meta)
        written.append(LAST)
        save_resume_state(self.run.path, t.model, t.optimizer, t.scheduler, t.scaler,
                          {"epoch": result.epoch - 1, "best_top1": result.best_top1, "best_epoch": result.best_epoch,
                           "optimizer": self.optimizer_name}, meta, extra=t.extra_state())
        self.run.write_json(FINAL_METRICS, {
            "best_epoch": result.best_epoch, "best_val_top1": result.best_top1, "last_epoch": result.epoch,
            "per_class_accuracy": per_class, "confusion_matrix": result.confusion_matrix, "classes": self.meta.classes,
            **({"task": "multi-label", **result.multilabel} if result.multilabel else {}),
        })
        if self.run.staged:  # the first checkpoint is complete: the run takes its place (and replaces an old one)
            self.run.promote()
        if not self.latest_pointed:  # runs/latest only ever names a run that has a checkpoint
            self.run.point_latest()
            self.latest_pointed = True
        for which in written:
            self.callbacks.call("on_checkpoint", self.run.weights(which), meta)


class ConsoleLine(Callback):
    """One line per epoch through the "zoo" logger (with balanced accuracy and macro-F1 when the classes
    are imbalanced: top-1 alone hides the small classes there)."""

    def __init__(self, imbalanced: bool = False) -> None:
        self.imbalanced = imbalanced

    def on_epoch_end(self, result: EpochResult) -> None:
        from zoo.engine.console import log_epoch

        log_epoch(result, self.imbalanced)


class TensorBoard(Callback):
    """Per-epoch scalars as TensorBoard event files in <run>/tensorboard (`--tensorboard`, or
    `--callback tensorboard`; pip install 'zoo[tensorboard]')."""

    TAGS = {"train_loss": "loss/train", "val_loss": "loss/val", "train_top1": "top1/train", "val_top1": "top1/val",
            "val_top5": "top5/val"}

    def __init__(self, folder: str | Path | None = None) -> None:
        from zoo.engine.checkpoint import check_tensorboard

        check_tensorboard()
        self.folder = Path(folder) if folder else None

    def on_fit_start(self, plan) -> None:
        if self.folder is None:
            self.folder = Path(plan.output) / TENSORBOARD

    def on_epoch_end(self, result: EpochResult) -> None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(self.folder))
        try:
            for key, value in result.metrics().items():
                if key != "epoch":
                    writer.add_scalar(self.TAGS.get(key, key), value, result.epoch)
        finally:
            writer.close()


class EarlyStopping(Callback):
    """Stop when val top-1 has not improved for ``patience`` epochs (--patience)."""

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def on_epoch_end(self, result: EpochResult) -> None:
        if result.epoch - result.best_epoch >= self.patience:
            raise StopTraining(f"val top-1 has not improved for {self.patience} epochs")
