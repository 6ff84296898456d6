"""What differs between single-label and multi-label training: the loss, what a right answer is, the
evaluation pass. The loop asks for these by the dataset's task and is otherwise the same.

Single-label: cross-entropy over the classes (softmax), top-1 right or wrong. Multi-label: one
independent yes/no per class (binary cross-entropy on the logits, i.e. sigmoid probabilities),
class weights as positive weights, label smoothing pulling targets towards 0.5; right means the
whole label set at the threshold.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from zoo.data.dataset import MULTI_LABEL
from zoo.engine.metrics import EvalAccumulator


class MultiLabelLoss(nn.Module):
    """BCE-with-logits averaged over images and classes; ``pos_weight`` per class, targets smoothed
    to (1 - s) * y + s / 2."""

    def __init__(self, pos_weight: torch.Tensor | None = None, label_smoothing: float = 0.0):
        super().__init__()
        self.register_buffer("pos_weight", pos_weight)
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = targets.to(logits.dtype)
        if self.label_smoothing:
            targets = targets * (1 - self.label_smoothing) + self.label_smoothing / 2
        return nn.functional.binary_cross_entropy_with_logits(logits, targets, pos_weight=self.pos_weight)


def criterion(task: str, weights: torch.Tensor | None, label_smoothing: float) -> nn.Module:
    if task == MULTI_LABEL:
        return MultiLabelLoss(weights, label_smoothing)
    return nn.CrossEntropyLoss(weight=weights, label_smoothing=label_smoothing)


def hits(task: str, logits: torch.Tensor, labels: torch.Tensor, threshold: float) -> torch.Tensor:
    """Right answers in a batch (on the device, no sync): the top-1 class, or the whole label set."""
    if task == MULTI_LABEL:
        return ((logits > math.log(threshold / (1 - threshold))) == (labels > 0.5)).all(1).sum()
    return (logits.argmax(1) == labels).sum()


def eval_loss_sum(task: str, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The unweighted loss summed over the batch's images (multi-label: each image's mean over classes)."""
    if task == MULTI_LABEL:
        per_label = nn.functional.binary_cross_entropy_with_logits(logits, labels.float(), reduction="none")
        return per_label.mean(1).sum()
    return nn.functional.cross_entropy(logits, labels, reduction="sum")


class MultiLabelAccumulator:
    """Keeps the sigmoid probabilities and targets of the evaluation split (on the device) for the
    ranking metrics, which need them all: mAP, tuned thresholds (zoo.multilabel)."""

    def __init__(self, num_classes: int, device: torch.device, threshold: float):
        self.num_classes, self.threshold = num_classes, threshold
        self.loss = torch.zeros((), device=device, dtype=torch.float64)
        self.probs: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []

    def update(self, logits: torch.Tensor, labels: torch.Tensor, loss_sum: torch.Tensor) -> None:
        self.probs.append(torch.sigmoid(logits.float()))
        self.targets.append(labels > 0.5)
        self.loss += loss_sum.double()

    def result(self) -> dict:
        from zoo import multilabel

        probs = torch.cat(self.probs).cpu().numpy() if self.probs else torch.zeros(0, self.num_classes).numpy()
        targets = torch.cat(self.targets).cpu().numpy() if self.targets else probs > 1
        s = multilabel.summary(probs, targets, self.threshold)
        at = s["at_threshold"]
        return {
            "val_loss": self.loss.item() / max(1, len(probs)),
            "val_top1": s["top1"], "val_top5": s["top5"],
            "val_balanced_accuracy": at["macro_recall"], "val_macro_f1": at["macro_f1"],
            "val_map": s["map"], "val_micro_f1": at["micro_f1"], "val_exact_match": at["exact_match"],
            "per_class_accuracy": at["recall"], "confusion_matrix": [],
            "multilabel": {"per_class_ap": s["per_class_ap"], "threshold": self.threshold, "tp": at["tp"],
                           "fp": at["fp"], "fn": at["fn"], "tuned_thresholds": s["tuned_thresholds"],
                           "tuned_macro_f1": s["at_tuned"]["macro_f1"],
                           "label_frequency_map": s["label_frequency_map"]},
        }


def accumulator(task: str, num_classes: int, device: torch.device, threshold: float):
    if task == MULTI_LABEL:
        return MultiLabelAccumulator(num_classes, device, threshold)
    return EvalAccumulator(num_classes, device)
