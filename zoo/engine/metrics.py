"""Evaluation metrics (top-1/top-5, per class, confusion matrix) and the per-epoch logs."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import torch

from zoo.engine.checkpoint import atomic_write_text


class EvalAccumulator:
    """Sums on the device; nothing syncs with the host until ``result()``."""

    def __init__(self, num_classes: int, device: torch.device):
        self.num_classes = num_classes
        self.loss = torch.zeros((), device=device, dtype=torch.float64)
        self.top5 = torch.zeros((), device=device, dtype=torch.int64)
        self.confusion = torch.zeros(num_classes * num_classes, device=device, dtype=torch.int64)
        self.count = 0

    def update(self, logits: torch.Tensor, labels: torch.Tensor, loss_sum: torch.Tensor) -> None:
        k = min(5, self.num_classes)
        self.top5 += (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1).sum()
        pred = logits.argmax(dim=1)
        self.confusion += torch.bincount(labels * self.num_classes + pred, minlength=self.num_classes ** 2)
        self.loss += loss_sum.double()
        self.count += labels.numel()

    def result(self) -> dict[str, Any]:
        confusion = self.confusion.view(self.num_classes, self.num_classes).cpu()
        n = max(1, self.count)
        per_class = (confusion.diag() / confusion.sum(1).clamp(min=1)).tolist()
        return {
            "val_loss": self.loss.item() / n,
            "val_top1": confusion.diag().sum().item() / n,
            "val_top5": self.top5.item() / n,
            "per_class_accuracy": per_class,
            "confusion_matrix": confusion.tolist(),
        }


EPOCH_FIELDS = ["epoch", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "lr",
                "images_per_s", "epoch_time_s", "peak_gpu_mem_mb", "elapsed_s"]


def append_epoch(run_dir: Path, row: dict[str, Any]) -> None:
    """Rewrite metrics.jsonl and metrics.csv atomically with the new row appended."""
    jsonl = run_dir / "metrics.jsonl"
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()] if jsonl.is_file() else []
    rows = [r for r in rows if r["epoch"] < row["epoch"]] + [row]  # a resumed epoch replaces its old row
    atomic_write_text(jsonl, "".join(json.dumps(r) + "\n" for r in rows))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EPOCH_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(run_dir / "metrics.csv", buffer.getvalue())


def read_epochs(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def write_plots(run_dir: Path, classes: list[str], confusion: list[list[int]]) -> list[Path]:
    """Curves and confusion matrix as PNG, when matplotlib is installed (extra 'plots')."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ModuleNotFoundError:
        return []
    rows = read_epochs(run_dir)
    epochs = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [r["train_loss"] for r in rows], label="train")
    ax_loss.plot(epochs, [r["val_loss"] for r in rows], label="val")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_loss.legend()
    ax_acc.plot(epochs, [r["train_top1"] for r in rows], label="train top-1")
    ax_acc.plot(epochs, [r["val_top1"] for r in rows], label="val top-1")
    ax_acc.plot(epochs, [r["val_top5"] for r in rows], label="val top-5")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1))
    ax_acc.legend()
    curves = run_dir / "curves.png"
    fig.tight_layout()
    fig.savefig(curves, dpi=90)
    plt.close(fig)
    size = max(4, min(14, len(classes) * 0.5))
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(confusion, cmap="Blues")
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix")
    if len(classes) <= 30:
        ax.set_xticks(range(len(classes)), classes, rotation=90)
        ax.set_yticks(range(len(classes)), classes)
    matrix = run_dir / "confusion_matrix.png"
    fig.tight_layout()
    fig.savefig(matrix, dpi=90)
    plt.close(fig)
    return [curves, matrix]
