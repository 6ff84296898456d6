"""Evaluation metrics (top-1/top-5, per class, confusion matrix) and the per-epoch logs."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import torch

from zoo.files import atomic_target, atomic_write_text
from zoo.runs import CONFUSION, CURVES, METRICS_CSV, METRICS_JSONL, RunFolder


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
            **class_balanced_scores(confusion),
            "val_top5": self.top5.item() / n,
            "per_class_accuracy": per_class,
            "confusion_matrix": confusion.tolist(),
        }


def class_balanced_scores(confusion) -> dict[str, float]:
    """Balanced accuracy (mean recall over the classes present) and macro-F1 from a confusion matrix
    (rows true, columns predicted): what top-1 hides when classes are imbalanced."""
    confusion = confusion.double()
    support, predicted, hits = confusion.sum(1), confusion.sum(0), confusion.diag()
    present = support > 0
    recall = hits / support.clamp(min=1)
    precision = hits / predicted.clamp(min=1)
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    return {"val_balanced_accuracy": recall[present].mean().item() if present.any() else 0.0,
            "val_macro_f1": f1[present].mean().item() if present.any() else 0.0}


def append_epoch(run: RunFolder, row: dict[str, Any]) -> None:
    """Rewrite metrics.jsonl and metrics.csv atomically with the new row appended."""
    rows = [r for r in read_epochs(run.path) if r["epoch"] < row["epoch"]] + [row]  # a resumed epoch replaces its row
    atomic_write_text(run.file(METRICS_JSONL), "".join(json.dumps(r) + "\n" for r in rows))
    buffer = io.StringIO()
    from zoo.engine.callbacks import EpochResult

    writer = csv.DictWriter(buffer, fieldnames=EpochResult.metric_names(), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(run.file(METRICS_CSV), buffer.getvalue())


def read_epochs(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS_JSONL
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def write_plots(run: RunFolder, classes: list[str], confusion: list[list[int]]) -> list[Path]:
    """curves.png (loss, accuracy, learning rate per epoch) and confusion_matrix.png, when matplotlib is
    installed (extra 'plots')."""
    plt = _pyplot()
    if plt is None:
        return []
    curves = _save(curves_figure(plt, read_epochs(run.path)), run.file(CURVES))
    if not confusion:  # multi-label: no confusion matrix (final_metrics.json has TP/FP/FN per class)
        return [curves]
    return [curves, write_confusion_png(run.file(CONFUSION), classes, confusion)]


def write_confusion_png(path: Path, classes: list[str], confusion: list[list[int]],
                        title: str = "confusion matrix (validation)") -> Path | None:
    plt = _pyplot()
    return _save(confusion_figure(plt, classes, confusion, title), path) if plt is not None else None


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ModuleNotFoundError:
        return None
    return plt


def curves_figure(plt, rows: list[dict[str, Any]]):
    epochs = [r["epoch"] for r in rows]
    style = dict(marker="o", markersize=4)  # markers: a 1-epoch run still shows its points
    fig, (ax_loss, ax_acc, ax_lr) = plt.subplots(1, 3, figsize=(14, 4))
    for key, label in (("train_loss", "train"), ("val_loss", "val")):
        ax_loss.plot(epochs, [r[key] for r in rows], label=label, **style)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    for key, label in (("train_top1", "train top-1"), ("val_top1", "val top-1"), ("val_top5", "val top-5")):
        ax_acc.plot(epochs, [r[key] for r in rows], label=label, **style)
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
    ax_lr.plot(epochs, [r["lr"] for r in rows], color="tab:purple", **style)
    ax_lr.set(xlabel="epoch", ylabel="learning rate", title="learning rate (end of epoch)")
    for ax in (ax_loss, ax_acc, ax_lr):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    ax_loss.legend()
    ax_acc.legend()
    return fig


def plain_text(text: str) -> str:
    """Class names as matplotlib shows them literally: `$` would start mathtext (`$\\frac{x$` crashes it)."""
    return text.replace("$", r"\$")


def confusion_figure(plt, classes: list[str], confusion: list[list[int]], title: str):
    """Counts in the cells (dark text on light cells, light on dark) and a colour bar; names up to 60 classes."""
    import numpy as np

    matrix = np.asarray(confusion)
    n = len(classes)
    side = max(5.0, min(24.0, 2 + n * 0.45))
    fig, ax = plt.subplots(figsize=(side + 1.5, side))
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="images")
    ax.set(xlabel="predicted", ylabel="true", title=plain_text(title))
    if n <= 60:
        font = max(5, min(10, 220 // max(n, 1)))
        names = [plain_text(c[:18]) for c in classes]
        ax.set_xticks(range(n), names, rotation=90, fontsize=font)
        ax.set_yticks(range(n), names, fontsize=font)
        threshold = matrix.max() / 2 if matrix.size else 0
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=font,
                            color="white" if matrix[i, j] > threshold else "black")
    return fig


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_target(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return path
