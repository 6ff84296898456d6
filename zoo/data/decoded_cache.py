"""The decode-once cache: every image decoded a single time, resized (shorter side) and
center-cropped to side x side, as uint8 arrays. Epochs after the first then do no JPEG work,
and augmentation runs on the cached pixels (on the GPU when training there).

In memory (``decode_once``) it lasts one run; on disk (``decode_once_to_disk``) it is a .npy file
under zoo's cache, memory-mapped, written atomically and reused by later runs over the same files
(keyed by their paths, sizes and modification times, and the side).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from zoo.data.dataset import ArrayImages, FileImages, ImageSource

log = logging.getLogger("zoo.data")

CACHE_BUDGET_BYTES = 4 << 30  # the in-memory cache is used automatically below this size
_FORMAT = "zoo-decoded-v1"  # part of the disk key: change it when the resize/crop below changes


def cache_size_bytes(source: ImageSource, side: int) -> int:
    return len(source) * side * side * 3


def is_cached(source: ImageSource, side: int) -> bool:
    return isinstance(source, ArrayImages) and source.images.shape[1:3] == (side, side)


def decode_once(source: ImageSource, side: int, workers: int = 8) -> ArrayImages:
    """The whole split in memory. Array sources of another size (CIFAR at 32 px for a 64 px model) are resized too."""
    if is_cached(source, side):
        return source
    load = _square_loader(source, side)
    with ThreadPoolExecutor(max_workers=workers) as pool:  # PIL releases the GIL while decoding
        images = np.stack(list(pool.map(load, range(len(source)))))
    return ArrayImages(images, source.labels)


def decode_once_to_disk(source: FileImages, side: int, folder: Path | None = None, workers: int = 8) -> ArrayImages:
    """The split as a memory-mapped .npy under zoo's cache (``folder``), decoded only if no run made it yet."""
    from zoo.hub import cache_dir

    folder = Path(folder) if folder is not None else cache_dir("decoded")
    path = folder / f"{_disk_key(source, side)}.npy"
    shape = (len(source), side, side, 3)
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        load = _square_loader(source, side)

        def fill(index: int) -> None:
            out[index] = load(index)

        try:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(fill, range(len(source))))
            out.flush()
            del out
            os.replace(tmp, path)  # a killed run leaves a temp file, never a half-written cache
        finally:
            tmp.unlink(missing_ok=True)
        log.info("wrote the decoded cache %s (%.1f MB)", path, path.stat().st_size / 1e6)
    images = np.load(path, mmap_mode="c")  # copy-on-write: writable views for torch, the file never changes
    if images.shape != shape:
        raise OSError(f"decoded cache {path} has shape {images.shape}, expected {shape}; delete it")
    return ArrayImages(images, source.labels)


def _disk_key(source: FileImages, side: int) -> str:
    digest = hashlib.sha256(f"{_FORMAT}|{side}|{len(source)}".encode())
    for name in source.paths:
        stat = os.stat(name)
        digest.update(f"|{os.path.abspath(name)}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]


def _square_loader(source: ImageSource, side: int) -> Callable[[int], np.ndarray]:
    def load(index: int) -> np.ndarray:
        if isinstance(source, FileImages):
            from zoo.data.decode import decode_rgb

            image = decode_rgb(source.paths[index], draft_size=(side, side))
        else:
            image = source.load(index)
        scale = side / min(image.size)
        w, h = max(side, round(image.width * scale)), max(side, round(image.height * scale))
        image = image.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=None)
        left, top = (w - side) // 2, (h - side) // 2
        return np.asarray(image.crop((left, top, left + side, top + side)))

    return load
