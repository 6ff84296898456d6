"""Multi-label scores from probabilities (sigmoid outputs) and multi-hot targets, in numpy.

One implementation for the epoch lines, `zoo eval` and the export gates:
  average precision  per class, the area under its precision-recall curve as scikit-learn's
                     average_precision_score computes it (precision at each positive, ties broken
                     by taking all of a score at once); mAP is their mean over classes with positives;
  at a threshold     per class TP/FP/FN, precision, recall and F1; micro-F1 over all labels; the
                     exact-match ratio (an image's predicted label set equals its true one);
  tuned thresholds   per class, the threshold that maximises that class's F1 on the data given
                     (validation): saved with the checkpoint, used when asked for (--threshold tuned).
"""

from __future__ import annotations

from typing import Any

import numpy as np

DEFAULT_THRESHOLD = 0.5


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float | None:
    """AP of one class (None when it has no positive: AP is undefined there)."""
    positives = np.asarray(positives) > 0.5
    total = int(positives.sum())
    if total == 0:
        return None
    order = np.argsort(-np.asarray(scores), kind="stable")
    ranked_scores, hits = np.asarray(scores)[order], positives[order]
    true_pos = np.cumsum(hits)
    # only the last of each run of equal scores is a point of the curve (all of a score are taken at once)
    last = np.r_[np.flatnonzero(np.diff(ranked_scores)), len(ranked_scores) - 1]
    tp, seen = true_pos[last], last + 1
    recall_gain = np.diff(np.r_[0, tp]) / total
    return float(np.sum(recall_gain * tp / seen))


def per_class_ap(probs: np.ndarray, targets: np.ndarray) -> list[float | None]:
    return [average_precision(probs[:, c], targets[:, c]) for c in range(probs.shape[1])]


def mean_ap(aps: list[float | None]) -> float:
    present = [ap for ap in aps if ap is not None]
    return float(np.mean(present)) if present else 0.0


def thresholds_for(threshold: float | list[float] | np.ndarray, num_classes: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(threshold, dtype=np.float64), (num_classes,))


def predicted(probs: np.ndarray, threshold: float | list[float] | np.ndarray = DEFAULT_THRESHOLD) -> np.ndarray:
    """Multi-hot predictions: a class is predicted where its probability reaches its threshold."""
    return np.asarray(probs) >= thresholds_for(threshold, np.shape(probs)[1])


def scores_at(probs: np.ndarray, targets: np.ndarray, threshold: float | list[float] | np.ndarray) -> dict[str, Any]:
    """Counts and scores at a threshold (one for all classes, or one per class)."""
    truth, guess = np.asarray(targets) > 0.5, predicted(probs, threshold)
    tp, fp, fn = (guess & truth).sum(0), (guess & ~truth).sum(0), (~guess & truth).sum(0)
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / np.maximum(tp + fn, 1)
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    present = (tp + fn) > 0
    micro = 2 * tp.sum() / max(1, 2 * tp.sum() + fp.sum() + fn.sum())
    return {
        "tp": tp.tolist(), "fp": fp.tolist(), "fn": fn.tolist(), "precision": precision.tolist(),
        "recall": recall.tolist(), "f1": f1.tolist(),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "macro_recall": float(recall[present].mean()) if present.any() else 0.0,
        "micro_f1": float(micro),
        "exact_match": float((guess == truth).all(1).mean()) if len(truth) else 0.0,
    }


def tune_thresholds(probs: np.ndarray, targets: np.ndarray, fallback: float = DEFAULT_THRESHOLD) -> list[float]:
    """Per class, the threshold (midway between two neighbouring probabilities) with the best F1; a class
    without positives keeps ``fallback``."""
    out = []
    for c in range(probs.shape[1]):
        truth = np.asarray(targets[:, c]) > 0.5
        if not truth.any():
            out.append(fallback)
            continue
        order = np.argsort(-probs[:, c], kind="stable")
        ranked, hits = probs[order, c], truth[order]
        tp = np.cumsum(hits)
        last = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]  # predict every image down to here
        f1 = 2 * tp[last] / (last + 1 + truth.sum())
        best = last[int(np.argmax(f1))]
        below = ranked[best + 1] if best + 1 < len(ranked) else 0.0
        out.append(round(float((ranked[best] + below) / 2), 6))
    return out


def summary(probs: np.ndarray, targets: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """Everything an epoch line, a checkpoint and `zoo eval` report for multi-label data."""
    probs, targets = np.asarray(probs, dtype=np.float64), np.asarray(targets)
    aps = per_class_ap(probs, targets)
    at = scores_at(probs, targets, threshold)
    tuned = tune_thresholds(probs, targets, threshold)
    top = probs.argmax(1) if len(probs) else np.zeros(0, dtype=int)
    top5 = np.argsort(-probs, axis=1)[:, :5] if len(probs) else np.zeros((0, 1), dtype=int)
    truth = targets > 0.5
    rows = np.arange(len(probs))
    return {
        "map": mean_ap(aps), "per_class_ap": aps, "threshold": threshold, "at_threshold": at,
        "tuned_thresholds": tuned, "at_tuned": scores_at(probs, targets, tuned),
        # the most probable class is one of the image's labels / one of its labels is among the five most probable
        "top1": float(truth[rows, top].mean()) if len(probs) else 0.0,
        "top5": float(np.take_along_axis(truth, top5, 1).any(1).mean()) if len(probs) else 0.0,
        "label_frequency_map": mean_ap(per_class_ap(np.broadcast_to(targets.mean(0), probs.shape), targets)),
    }
