"""The in-memory description of a dataset: class names and splits of labelled images.

Nothing here decodes pixels up front: FileImages holds paths, ArrayImages holds decoded uint8
arrays (CIFAR, in-memory plugins). Both hand out RGB PIL images one at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from zoo.errors import DataError

EVAL_SPLIT_NAMES = ("val", "valid", "validation", "test")


@dataclass
class FileImages:
    paths: list[str]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> Image.Image:
        from zoo.data.decode import BadImageError, decode_rgb

        try:
            return decode_rgb(self.paths[index])
        except BadImageError as exc:  # it decoded when the dataset was scanned: the file changed
            raise DataError(f"image {self.paths[index]} can no longer be read: {exc}") from exc

    def name_of(self, index: int) -> str:
        return self.paths[index]

    def subset(self, indices: list[int] | np.ndarray) -> FileImages:
        return FileImages([self.paths[i] for i in indices], self.labels[np.asarray(indices, dtype=int)])


@dataclass
class ArrayImages:
    images: np.ndarray  # (N, H, W, 3) uint8, RGB
    labels: np.ndarray
    cache_spec: Any = None  # the decoded_cache.CacheSpec that made these pixels, if a cache did

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> Image.Image:
        return Image.fromarray(self.images[index])

    def name_of(self, index: int) -> str:
        return f"#{index}"

    def subset(self, indices: list[int] | np.ndarray) -> ArrayImages:
        idx = np.asarray(indices, dtype=int)
        return ArrayImages(self.images[idx], self.labels[idx], self.cache_spec)


ImageSource = FileImages | ArrayImages


@dataclass
class ImageDataset:
    """Class names plus named splits; ``train`` and ``eval`` pick the splits training uses."""

    name: str
    classes: list[str]
    splits: dict[str, ImageSource]
    layout: str
    root: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    split_file: dict[str, Any] | None = None  # how a split made by zoo was drawn (to save with runs)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

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

    def counts(self) -> dict[str, list[int]]:
        """Images per class for each split."""
        return {
            split: np.bincount(src.labels.astype(int), minlength=self.num_classes).tolist()
            for split, src in self.splits.items()
        }

    def check_usable(self) -> None:
        """Raise one clear line if training could not start on this dataset."""
        if not self.classes:
            raise DataError(f"dataset {self.name} at {self.root or '?'} has no classes")
        for split, source in self.splits.items():
            if len(source) == 0:
                raise DataError(
                    f"split {split!r} of dataset {self.name} at {self.root or '?'} has no usable images"
                    + (f" ({len(self.skipped)} files skipped as unreadable)" if self.skipped else "")
                )
