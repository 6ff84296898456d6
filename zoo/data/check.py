"""`zoo data check`: what a dataset holds and what is wrong with it, before training."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zoo.data.dataset import MULTI_LABEL, ArrayImages, FileImages, ImageDataset


@dataclass
class DataReport:
    name: str
    layout: str
    root: str
    classes: list[str]
    counts: dict[str, list[int]]
    skipped: list[tuple[str, str]]
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (train file, eval file)
    size_range: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # fatal
    warnings: list[str] = field(default_factory=list)  # worth knowing before training
    task: str = "single-label"
    images: dict[str, int] = field(default_factory=dict)  # per split
    cardinality: dict[str, dict[str, float]] = field(default_factory=dict)  # multi-label: labels per image, per split

    @property
    def ok(self) -> bool:
        return not self.problems


def check_dataset(dataset: ImageDataset) -> DataReport:
    report = DataReport(dataset.name, dataset.layout, dataset.root, dataset.classes, dataset.counts(),
                        list(dataset.skipped), problems=dataset.problems(), task=dataset.task,
                        images={split: len(source) for split, source in dataset.splits.items()})
    if dataset.task == MULTI_LABEL:
        for split, source in dataset.splits.items():
            per_image = np.asarray(source.labels).sum(1) if len(source) else np.zeros(1)
            report.cardinality[split] = {"mean": round(float(per_image.mean()), 3), "min": int(per_image.min()),
                                         "max": int(per_image.max()), "without_labels": int((per_image == 0).sum())}
    if "train" in dataset.splits:
        eval_name = next((s for s in dataset.splits if s != "train"), None)
        if eval_name:
            report.duplicates = _duplicates(dataset.splits["train"], dataset.splits[eval_name])
    report.size_range = _sizes(dataset)
    report.warnings += imbalance_warning(dataset)
    return report


IMBALANCED = 5.0  # largest / smallest training class above which a run is treated as imbalanced


def imbalance_ratio(class_counts: list[int] | None) -> float:
    """Largest over smallest training class (1.0 when unknown or balanced)."""
    counts = [c for c in (class_counts or []) if c > 0]
    return max(counts) / min(counts) if counts else 1.0


def imbalance_warning(dataset: ImageDataset) -> list[str]:
    """One line when the largest training class has more than 5x the images of the smallest, with the options."""
    counts = dataset.counts().get("train", [])
    ratio = imbalance_ratio(counts)
    if ratio <= IMBALANCED:
        return []
    largest, smallest = max(range(len(counts)), key=counts.__getitem__), min(
        (i for i in range(len(counts)) if counts[i]), key=counts.__getitem__)
    return [f"classes are imbalanced: {dataset.classes[largest]} has {counts[largest]} training images, "
            f"{dataset.classes[smallest]} {counts[smallest]} ({ratio:.0f}x); zoo finetune then weighs the loss by "
            "class (--class-weights auto), keeps the checkpoint best at balanced accuracy (--select-metric) and shows "
            "balanced accuracy and macro-F1; --sampler balanced draws every class equally"]


def _duplicates(train, evaluation) -> list[tuple[str, str]]:
    """(train file, evaluation file) pairs with the same bytes."""
    if all(isinstance(s, FileImages) and s.digests is not None for s in (train, evaluation)):
        # the scan's (remembered) SHA-1s, matched by numpy: no file read, no Python object per file
        ours, theirs = (np.ascontiguousarray(s.digests).view("V20").ravel() for s in (train, evaluation))
        _, in_train, in_eval = np.intersect1d(ours, theirs, return_indices=True)
        return [(train.paths[int(i)], evaluation.paths[int(j)]) for i, j in zip(in_train, in_eval)]
    train_hashes = _hashes(train)
    return [(train_hashes[key], name) for key, name in _hashes(evaluation).items() if key in train_hashes]


def _hashes(source) -> dict[str, str]:
    out = {}
    if isinstance(source, FileImages):
        for path in source.paths:
            with open(path, "rb") as f:
                out.setdefault(hashlib.sha1(f.read()).hexdigest(), path)
    elif isinstance(source, ArrayImages):
        for i, img in enumerate(source.images):
            out.setdefault(hashlib.sha1(img.tobytes()).hexdigest(), f"#{i}")
    return out


def _sizes(dataset: ImageDataset) -> dict[str, Any]:
    from PIL import Image

    widths, heights = [], []
    for source in dataset.splits.values():
        if isinstance(source, ArrayImages):
            heights.append(source.images.shape[1])
            widths.append(source.images.shape[2])
            continue
        if isinstance(source, FileImages) and source.sizes is not None and len(source.sizes):  # from the scan
            widths.extend([int(source.sizes[:, 0].min()), int(source.sizes[:, 0].max())])
            heights.extend([int(source.sizes[:, 1].min()), int(source.sizes[:, 1].max())])
            continue
        for path in getattr(source, "paths", ()):  # packed shards: not opened for a check
            with Image.open(path) as im:  # header only
                widths.append(im.width)
                heights.append(im.height)
    if not widths:
        return {}
    return {"min": [min(widths), min(heights)], "max": [max(widths), max(heights)]}
