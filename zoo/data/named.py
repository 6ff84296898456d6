"""Factories behind the named datasets, and the one that needs no download (digits)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zoo.data.dataset import ArrayImages, ImageDataset
from zoo.data.layouts import read_layout, stratified_split
from zoo.errors import DataError


def folder_dataset(root: Path, layout: str | None = None, **kwargs) -> ImageDataset:
    return read_layout(Path(root), layout, **kwargs)


def digits(root: Path | None = None, size: int = 32, val_ratio: float = 0.2, seed: int = 0) -> ImageDataset:
    """scikit-learn's 1,797 handwritten digits (bundled in the wheel), as 32x32 RGB images.

    Chosen as the embedded demo set because a well-known PyPI package ships the pixels, so the
    README demo trains on real data on an offline machine in seconds.
    """
    try:
        from sklearn.datasets import load_digits
    except ModuleNotFoundError as exc:
        raise DataError("dataset 'digits' needs scikit-learn: pip install 'zoo[demo]'") from exc
    from PIL import Image

    bunch = load_digits()
    small = np.clip(bunch.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
    images = np.stack([
        np.asarray(Image.fromarray(img, mode="L").resize((size, size), Image.Resampling.BILINEAR).convert("RGB"))
        for img in small
    ])
    labels = bunch.target.astype(np.int64)
    train_idx, val_idx = stratified_split(labels, val_ratio, seed)
    everything = ArrayImages(images, labels)
    return ImageDataset(
        name="digits",
        classes=[str(d) for d in range(10)],
        splits={"train": everything.subset(train_idx), "val": everything.subset(val_idx)},
        layout="in-memory",
        split_record={"method": "stratified", "val_ratio": val_ratio, "seed": seed},
    )
