"""The in-memory description of a dataset: class names and splits of labelled images.

Nothing here decodes pixels up front: FileImages holds paths, ArrayImages holds decoded uint8
arrays (CIFAR, in-memory plugins). Both hand out RGB PIL images one at a time.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from zoo.errors import DataError

EVAL_SPLIT_NAMES = ("val", "valid", "validation", "test")
SINGLE_LABEL, MULTI_LABEL = "single-label", "multi-label"
TASKS = {"single": SINGLE_LABEL, "multi": MULTI_LABEL}  # --task names -> the task a model file records


def is_multi_hot(labels: np.ndarray) -> bool:
    """Labels are class indices (N,) for single-label data, multi-hot rows (N, classes) for multi-label."""
    return np.ndim(labels) == 2


def item_label(labels: np.ndarray, index: int):
    """One image's training target: its class index, or its multi-hot row as float32 (what BCE takes)."""
    if is_multi_hot(labels):
        import torch

        return torch.from_numpy(labels[index].astype(np.float32))
    return int(labels[index])


def multi_hot(rows: Sequence[Sequence[int]], num_classes: int) -> np.ndarray:
    """(N, num_classes) uint8 rows, 1 where the image shows the class."""
    out = np.zeros((len(rows), num_classes), dtype=np.uint8)
    for i, row in enumerate(rows):
        out[i, list(row)] = 1
    return out


class PackedPaths(Sequence[str]):
    """File paths as one buffer of UTF-8 bytes and an offsets array: a sequence of str that costs its
    characters plus 8 bytes per file, where a list of str costs about 100 bytes more (an object each).
    The longest folder all paths share is kept once."""

    def __init__(self, paths: Sequence[str] | PackedPaths = (), *, _parts: tuple | None = None):
        if _parts is not None:
            self.prefix, self.blob, self.offsets = _parts
            return
        paths = list(paths)
        prefix = os.path.commonprefix(paths) if len(paths) > 1 else ""
        prefix = prefix[:prefix.rfind("/") + 1]  # whole folders only
        encoded = [p[len(prefix):].encode("utf-8", "surrogateescape") for p in paths]
        self.prefix, self.blob = prefix, b"".join(encoded)
        self.offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=self.offsets[1:])

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.take(range(*index.indices(len(self))))
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"path index {index} out of range")
        start, end = self.offsets[index], self.offsets[index + 1]
        return self.prefix + self.blob[start:end].decode("utf-8", "surrogateescape")

    def __iter__(self):
        if self.blob.isascii():  # byte offsets are character offsets: decode once
            text, offsets = self.blob.decode("ascii"), self.offsets.tolist()
            return iter([self.prefix + text[a:b] for a, b in zip(offsets, offsets[1:])])
        return (self[i] for i in range(len(self)))

    def absolute(self):
        """The paths made absolute (the shared folder resolved once, not per file)."""
        prefix = os.path.abspath(self.prefix) + "/" if self.prefix else ""
        plain = PackedPaths(_parts=(prefix, self.blob, self.offsets))
        return iter(plain) if prefix else (os.path.abspath(p) for p in self)

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and len(self) == len(other) and all(a == b for a, b in zip(self, other))

    def take(self, indices) -> PackedPaths:
        return PackedPaths([self[int(i)] for i in indices])

    def nbytes(self) -> int:
        return len(self.blob) + self.offsets.nbytes


@dataclass(repr=False, eq=False)
class FileImages:
    paths: Sequence[str]  # a PackedPaths (lists given are packed)
    labels: np.ndarray
    identity: str | None = None  # the files' identity when read (scan_record.files_identity): caches' key
    sizes: np.ndarray | None = None  # (N, 2) width, height, from the scan (zoo data check reads no header)
    digests: np.ndarray | None = None  # (N, 20) SHA-1 of the bytes, from the scan (duplicates between splits)

    def __post_init__(self) -> None:
        if not isinstance(self.paths, PackedPaths):
            self.paths = PackedPaths(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return f"FileImages({len(self)} files)"

    def load(self, index: int) -> Image.Image:
        from zoo.data.decode import BadImageError, decode_rgb

        try:
            return decode_rgb(self.paths[index])
        except BadImageError as exc:  # it decoded when the dataset was scanned: the file changed
            raise DataError(f"image {self.paths[index]} can no longer be read: {exc}") from exc

    def subset(self, indices: Sequence[int] | np.ndarray) -> FileImages:
        idx = np.asarray(indices, dtype=int)
        identity = None
        if self.identity is not None:  # the same files, a known part of them: no need to stat them again
            identity = hashlib.sha256(f"{self.identity}|".encode() + idx.astype(np.int64).tobytes()).hexdigest()[:32]
        return FileImages(self.paths.take(idx), self.labels[idx], identity,
                          None if self.sizes is None else self.sizes[idx],
                          None if self.digests is None else self.digests[idx])

    def fingerprint(self, root: str = "") -> str:
        """Which files with which labels (names relative to ``root``, so a moved copy matches)."""
        digest = hashlib.sha256()
        for path, label in zip(self.paths, self.labels.tolist()):
            name = os.path.relpath(path, root) if root else path
            digest.update(f"{name}\0{label}\n".encode())
        return digest.hexdigest()


@dataclass(repr=False)
class ArrayImages:
    images: np.ndarray  # (N, H, W, 3) uint8, RGB
    labels: np.ndarray
    cache_spec: Any = None  # the decoded_cache.CacheSpec that made these pixels, if a cache did

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        return f"ArrayImages({len(self)} images of {'x'.join(map(str, self.images.shape[1:]))})"

    def load(self, index: int) -> Image.Image:
        return Image.fromarray(self.images[index])

    def subset(self, indices: Sequence[int] | np.ndarray) -> ArrayImages:
        idx = np.asarray(indices, dtype=int)
        return ArrayImages(self.images[idx], self.labels[idx], self.cache_spec)

    def fingerprint(self, root: str = "") -> str:
        digest = hashlib.sha256(np.ascontiguousarray(self.labels, dtype=np.int64).tobytes())
        digest.update(np.ascontiguousarray(self.images).data)
        return digest.hexdigest()


ImageSource = FileImages | ArrayImages


@dataclass(repr=False)
class ImageDataset:
    """Class names plus named splits; ``train`` and ``eval`` pick the splits training uses."""

    name: str
    classes: list[str]
    splits: dict[str, ImageSource]
    layout: str
    root: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    split_record: dict[str, Any] | None = None  # how a split made by zoo was drawn (saved with runs)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{split} {len(source)}" for split, source in self.splits.items())
        where = f", root={self.root!r}" if self.root else ""
        return f"ImageDataset({self.name!r}, {self.layout}, {self.num_classes} classes, {sizes}{where})"

    @classmethod
    def from_arrays(cls, name: str, classes: Sequence[str], train: tuple[np.ndarray, Sequence[int]],
                    val: tuple[np.ndarray, Sequence[int]]) -> ImageDataset:
        """An in-memory dataset: ``train`` and ``val`` are (uint8 images (N, H, W, 3) RGB, labels); labels are
        class indices, or (N, classes) multi-hot rows for multi-label data."""
        splits = {}
        for split, (images, labels) in (("train", train), ("val", val)):
            images = np.asarray(images)
            if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
                raise DataError(f"{name}/{split}: images must be uint8 (N, H, W, 3) RGB, got "
                                f"{images.dtype} {images.shape}")
            labels = np.asarray(labels, dtype=np.uint8 if np.ndim(labels) == 2 else np.int64)
            if len(labels) != len(images):
                raise DataError(f"{name}/{split}: {len(images)} images but {len(labels)} labels")
            splits[split] = ArrayImages(images, labels)
        dataset = cls(name=name, classes=list(classes), splits=splits, layout="in-memory")
        dataset.check_usable()
        return dataset

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def task(self) -> str:
        """multi-label when the splits hold multi-hot rows (see ``with_task``), else single-label."""
        return MULTI_LABEL if any(is_multi_hot(s.labels) for s in self.splits.values()) else SINGLE_LABEL

    def with_task(self, task: str = "auto") -> ImageDataset:
        """The dataset with labels for ``task``: "auto" keeps multi-hot rows only when some image has other
        than one label (a multi-label file whose images all have one label is single-label data); "single"
        refuses images with several labels; "multi" turns class indices into one-hot rows."""
        if task not in ("auto", "single", "multi"):
            raise DataError(f"unknown task {task!r}; use auto, single or multi")
        not_one = self._image_without_one_label()
        if task == "multi" or (task == "auto" and not_one is not None):
            one_hot = np.eye(self.num_classes, dtype=np.uint8)
            splits = {name: s if is_multi_hot(s.labels) else _relabelled(s, one_hot[s.labels])
                      for name, s in self.splits.items()}
        elif self.task == SINGLE_LABEL:
            return self
        elif not_one is not None:
            split, count = not_one
            raise DataError(f"dataset {self.name}: an image of split {split!r} has {count} labels, so it is "
                            "multi-label data; drop --task single (or use --task multi)")
        else:
            splits = {name: _relabelled(s, np.asarray(s.labels).argmax(1)) if is_multi_hot(s.labels) else s
                      for name, s in self.splits.items()}
        return ImageDataset(self.name, self.classes, splits, self.layout, self.root, self.skipped, self.split_record)

    @property
    def train(self) -> ImageSource:
        if "train" not in self.splits:
            raise DataError(f"dataset {self.name} has no 'train' split (found: {', '.join(self.splits)})")
        return self.splits["train"]

    @property
    def eval_split_name(self) -> str:
        for name in EVAL_SPLIT_NAMES:
            if name in self.splits:
                return name
        raise DataError(
            f"dataset {self.name} has no validation split (found: {', '.join(self.splits)}); "
            "add val/ or test/, or use a layout that zoo splits itself"
        )

    @property
    def eval(self) -> ImageSource:
        return self.splits[self.eval_split_name]

    def _image_without_one_label(self) -> tuple[str, int] | None:
        """(split, label count) of the first image with no label or several, None when every image has one."""
        for name, source in self.splits.items():
            if is_multi_hot(source.labels):
                per_image = np.asarray(source.labels).sum(1)
                odd = np.flatnonzero(per_image != 1)
                if len(odd):
                    return name, int(per_image[odd[0]])
        return None

    def limited(self, train: int | None = None, evaluation: int | None = None, seed: int = 0) -> ImageDataset:
        """The dataset with at most ``train`` training and ``evaluation`` evaluation images, drawn stratified
        (every class keeps its share, at least one image where it had any), the same for the same seed."""
        if train is None and evaluation is None:
            return self
        splits = dict(self.splits)
        for split, limit in (("train", train), (self.eval_split_name, evaluation)):
            if limit is not None and split in splits and len(splits[split]) > limit:
                splits[split] = splits[split].subset(stratified_sample(np.asarray(splits[split].labels), limit, seed))
        return ImageDataset(self.name, self.classes, splits, self.layout, self.root, self.skipped, self.split_record)

    def counts(self) -> dict[str, list[int]]:
        """Images per class for each split."""
        return {split: label_counts(src.labels, self.num_classes) for split, src in self.splits.items()}

    def fingerprint(self) -> str:
        """Identity of the data a run trains and validates on: classes, and each split's files and labels."""
        digest = hashlib.sha256("\n".join(self.classes).encode())
        for split in sorted(self.splits):
            digest.update(f"|{split}|{self.splits[split].fingerprint(self.root)}".encode())
        return digest.hexdigest()[:32]

    def problems(self) -> list[str]:
        """What would stop training on this dataset, one line each (empty when it is usable)."""
        if not self.classes:
            return [f"dataset {self.name} at {self.root or '?'} has no classes"]
        found = []
        unreadable = f" ({len(self.skipped)} files skipped as unreadable)" if self.skipped else ""
        for split, source in self.splits.items():
            labels = np.asarray(source.labels)
            if is_multi_hot(labels):
                if labels.shape[1] != self.num_classes:
                    return [f"dataset {self.name}: split {split!r} has multi-hot rows of {labels.shape[1]} labels for "
                            f"{self.num_classes} classes; give one column per class"]
            elif len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
                bad = int(labels.min() if labels.min() < 0 else labels.max())
                return [f"dataset {self.name}: split {split!r} has label {bad}, but its {self.num_classes} classes "
                        f"take labels 0..{self.num_classes - 1}; fix the labels (or the class list) of the dataset"]
            if len(source) == 0:
                found.append(f"split {split!r} of dataset {self.name} at {self.root or '?'} has no usable images"
                             + unreadable)
        if "train" in self.splits and len(self.splits["train"]):
            empty = [c for c, n in zip(self.classes, self.counts()["train"]) if n == 0]
            if empty:
                found.append(f"dataset {self.name}: classes with no training images: {_few(empty)}{unreadable}; "
                             "add images or remove the class")
        return found

    def check_usable(self) -> None:
        """Raise one clear line if training could not start on this dataset."""
        problems = self.problems()
        if problems:
            raise DataError(problems[0])


def label_counts(labels: np.ndarray, num_classes: int) -> list[int]:
    """Images per class (an image with several labels counts for each)."""
    labels = np.asarray(labels)
    if is_multi_hot(labels):
        return labels.sum(0, dtype=np.int64).tolist()
    return np.bincount(labels.astype(int), minlength=num_classes).tolist()


def strata(labels: np.ndarray) -> np.ndarray:
    """What a stratified draw keeps the shares of: the class, or for multi-hot rows each image's first label
    (-1: none), so every class keeps images."""
    labels = np.asarray(labels)
    return np.where(labels.any(1), labels.argmax(1), -1) if is_multi_hot(labels) else labels


def _relabelled(source: ImageSource, labels: np.ndarray) -> ImageSource:
    if isinstance(source, FileImages):
        return FileImages(source.paths, labels, source.identity, source.sizes, source.digests)
    return ArrayImages(source.images, labels, source.cache_spec)


def _few(names: list[str], n: int = 5) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def stratified_sample(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Sorted indices of ``limit`` items keeping each label's share (largest remainders; every present
    label at least once while the limit allows)."""
    rng = np.random.default_rng(seed)
    labels = strata(labels)
    classes, counts = np.unique(labels, return_counts=True)
    share = counts / counts.sum() * limit
    take = np.minimum(counts, np.maximum(np.floor(share).astype(int), 1 if limit >= len(classes) else 0))
    for i in np.argsort(-(share - np.floor(share))):  # hand out what rounding left, largest remainder first
        if take.sum() >= limit:
            break
        if take[i] < counts[i]:
            take[i] += 1
    while take.sum() > limit:  # the at-least-one floor overshot: trim the largest
        take[np.argmax(take)] -= 1
    chosen = [rng.choice(np.flatnonzero(labels == c), size=k, replace=False) for c, k in zip(classes, take) if k]
    return np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=int)
