"""From an ImageSource to batches: a torch Dataset, the decode-once cache, and DataLoaders."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from zoo.data.dataset import ArrayImages, FileImages, ImageSource

log = logging.getLogger("zoo.data")

CACHE_BUDGET_BYTES = 4 << 30  # decode-once cache is used automatically below this size


class TransformedImages(Dataset):
    def __init__(self, source: ImageSource, transform: Callable):
        self.source, self.transform = source, transform

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        return self.transform(self.source.load(index)), int(self.source.labels[index])


def cache_size_bytes(source: ImageSource, side: int) -> int:
    return len(source) * side * side * 3


def decode_once(source: ImageSource, side: int, workers: int = 8) -> ArrayImages:
    """Decode every file once, resized (shorter side) and center-cropped to side x side, as uint8.

    Augmentation then runs on the cached arrays, so epochs after the first do no JPEG work.
    """
    if isinstance(source, ArrayImages):
        return source
    from zoo.data.decode import decode_rgb

    def load(path: str) -> np.ndarray:
        image = decode_rgb(path, draft_size=(side, side))
        scale = side / min(image.size)
        w, h = max(side, round(image.width * scale)), max(side, round(image.height * scale))
        image = image.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=None)
        left, top = (w - side) // 2, (h - side) // 2
        return np.asarray(image.crop((left, top, left + side, top + side)))

    with ThreadPoolExecutor(max_workers=workers) as pool:  # PIL releases the GIL while decoding
        images = np.stack(list(pool.map(load, source.paths)))
    return ArrayImages(images, source.labels)


def default_workers(device: torch.device) -> int:
    cores = os.cpu_count() or 1
    return min(8, cores) if device.type == "cuda" else max(0, min(2, cores - 1))


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    workers: int,
    device: torch.device,
    generator: torch.Generator | None = None,
    sampler=None,
    drop_last: bool = False,
) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        generator=generator,
        drop_last=drop_last,
    )


def is_file_backed(source: ImageSource) -> bool:
    return isinstance(source, FileImages)
