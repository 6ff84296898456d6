"""The decode-once cache: every image decoded a single time, resized and centre-cropped to a
square (see CacheSpec), as uint8 arrays. Epochs after the first then do no JPEG work, and
augmentation runs on the cached pixels (on the GPU when training there).

In memory (``decode_once``) it lasts one run (a split that was slow to decode is kept on disk too, and
read back by the next run over the same files); on disk (``decode_once_to_disk``) it is a .npy file
under zoo's cache, memory-mapped, written atomically and reused by later runs over the same files
(keyed by the files' identities, zoo.files.stat_fingerprint, and the side). A run holds a shared
lock on the cache file it reads, and on the one it writes, so `zoo cache clear` leaves both alone.
"""

from __future__ import annotations

import logging
import mmap
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from zoo.data.dataset import ArrayImages, FileImages, ImageSource
from zoo.data.parallel import map_indices
from zoo.errors import DataError
from zoo.files import DiskFullError, atomic_target, hold_shared, stat_fingerprint
from zoo.specs import Preprocessing

log = logging.getLogger("zoo.data")

CACHE_BUDGET_BYTES = 4 << 30  # 4 GiB: the in-memory cache is used automatically below this size (--cache-budget)


def parse_size(text: str) -> int:
    """'4GiB', '512MB', '2.5 GB', '1e9' -> bytes (GB/MB/KB are powers of 1000, GiB/MiB/KiB of 1024)."""
    import re

    from zoo.errors import TrainingError

    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([KMGT]i?B|B)?\s*", str(text), re.I)
    if not match:
        raise TrainingError(f"--cache-budget {text!r} is not a size; write e.g. 4GiB, 512MB or 8GB")
    number, unit = float(match.group(1)), (match.group(2) or "B").upper()
    scale = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
    return int(number * scale[unit])


def format_size(size: float) -> str:
    """Bytes in binary units, as the budget is usually given (4 GiB is 4.3 GB)."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{int(size)} B"


def cache_budget(option: str | None = None) -> int:
    """--cache-budget, else $ZOO_CACHE_BUDGET, else 4 GiB."""
    import os

    text = option or os.environ.get("ZOO_CACHE_BUDGET")
    return parse_size(text) if text else CACHE_BUDGET_BYTES
_FORMAT = "zoo-decoded-v3"  # part of the disk key: change it when the resize/crop below changes


@dataclass(frozen=True)
class CacheSpec:
    """How cached pixels are made from an image.

    Training caches (``for_training``) keep a square of the resize size, so augmentation can still
    crop; they decode JPEGs at reduced scale (draft) for speed. Evaluation caches (``for_evaluation``)
    hold exactly what the evaluation transform produces before scaling, with the same torchvision
    ops, so validation during training sees the pixels `zoo predict` and the exports see.
    """

    side: int  # the cached square
    resize: int  # shorter side before the centre crop
    interpolation: str = "bilinear"
    exact: bool = False
    mode: str = "crop"  # Preprocessing.resize_mode: squash and letterbox keep the whole image

    @classmethod
    def for_training(cls, preprocessing: Preprocessing) -> CacheSpec:
        side = preprocessing.resize_size
        return cls(side, side, mode=preprocessing.resize_mode)  # PIL bilinear: augmentation resamples them again

    @classmethod
    def for_evaluation(cls, preprocessing: Preprocessing) -> CacheSpec:
        return cls(preprocessing.input_size, preprocessing.resize_size, preprocessing.interpolation, exact=True,
                   mode=preprocessing.resize_mode)

    def key(self) -> str:
        return f"{_FORMAT}|{self.side}|{self.resize}|{self.interpolation}|{self.exact}|{self.mode}"

    def loader(self, source: ImageSource) -> Callable[[int], np.ndarray]:
        return _exact_loader(source, self) if self.exact else _fast_loader(source, self.side, self.mode)


def cache_size_bytes(source: ImageSource, side: int) -> int:
    return len(source) * side * side * 3


def is_cached(source: ImageSource, spec: CacheSpec) -> bool:
    """Already what ``spec`` makes (arrays of the right size do for training: augmentation follows)."""
    if not isinstance(source, ArrayImages):
        return False
    return source.cache_spec == spec or (not spec.exact and source.images.shape[1:3] == (spec.side, spec.side))


def decode_once(source: ImageSource, spec: CacheSpec) -> ArrayImages:
    """The whole split in memory. Array sources (CIFAR at 32 px for a 64 px model) are brought to the spec too.

    Files are decoded straight into one shared block (a forked worker's writes land in it: no per-image
    arrays to stack, no second copy at the peak). A split that took more than REMEMBER_AFTER_S to decode
    is also kept on disk under zoo's cache, as ``--cache disk`` keeps it, and the next run over the same
    files reads it back instead of decoding again.
    """
    if is_cached(source, spec):
        return source
    if isinstance(source, FileImages):
        remembered = _remembered(source, spec)
        if remembered is not None:
            return ArrayImages(remembered, source.labels, spec)
    started = time.perf_counter()
    images = _shared_array((len(source), spec.side, spec.side, 3))
    load = spec.loader(source)

    def fill(index: int) -> None:
        images[index] = load(index)

    map_indices(fill, len(source))
    if isinstance(source, FileImages) and time.perf_counter() - started > REMEMBER_AFTER_S:
        _remember(source, spec, images)
    return ArrayImages(images, source.labels, spec)


REMEMBER_AFTER_S = 2.0  # decoding that took longer is kept on disk for the next run (reading it back: ~0.1 s/GB)


def _shared_array(shape: tuple[int, ...]) -> np.ndarray:
    """uint8 zeros in an anonymous shared mapping: processes forked to fill it write into this very memory."""
    size = int(np.prod(shape))
    if size == 0:
        return np.zeros(shape, dtype=np.uint8)
    return np.frombuffer(mmap.mmap(-1, size), dtype=np.uint8).reshape(shape)


def _remembered(source: FileImages, spec: CacheSpec) -> np.ndarray | None:
    """The split's pixels as an earlier run over the same files kept them (read into memory), or None."""
    from zoo.hub import cache_dir

    path = cache_dir("decoded") / f"{_disk_key(source, spec)}.npy"
    if not path.is_file() or hold_shared(path) is None:
        return None
    try:
        images = np.load(path)
    except (OSError, ValueError) as exc:
        log.debug("decoded cache %s not read (%s): decoding again", path, exc)
        return None
    if images.shape != (len(source), spec.side, spec.side, 3) or images.dtype != np.uint8:
        return None
    log.info("read the decoded cache an earlier run kept (%s, %s)", path.name, format_size(images.nbytes))
    return images


def _remember(source: FileImages, spec: CacheSpec, images: np.ndarray) -> None:
    from zoo.hub import cache_dir

    path = cache_dir("decoded") / f"{_disk_key(source, spec)}.npy"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if shutil.disk_usage(path.parent).free < 2 * images.nbytes:
            log.debug("decoded cache not kept: less than twice its size free in %s", path.parent)
            return
        with atomic_target(path, suffix=".npy") as tmp:
            np.save(tmp, images)
    except (OSError, DiskFullError) as exc:  # a read-only or full cache folder: decoding each run is the cost
        log.debug("decoded cache not kept: %s", exc)


def decode_once_to_disk(source: FileImages, spec: CacheSpec, folder: Path | None = None) -> ArrayImages:
    """The split as a memory-mapped .npy under zoo's cache (``folder``), decoded only if no run made it yet."""
    from zoo.hub import cache_dir

    folder = Path(folder) if folder is not None else cache_dir("decoded")
    path = folder / f"{_disk_key(source, spec)}.npy"
    shape = (len(source), spec.side, spec.side, 3)
    if not path.is_file() or hold_shared(path) is None:
        load = spec.loader(source)
        with atomic_target(path, suffix=".npy") as tmp:  # a killed run never leaves a half-written cache
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            hold_shared(tmp)  # in use from its first byte: the lock follows the file through the rename

            def fill(index: int) -> None:
                out[index] = load(index)  # a shared file mapping: a forked worker's write lands in the file

            map_indices(fill, len(source))
            out.flush()
            del out
        log.info("wrote the decoded cache %s (%.1f MB)", path, path.stat().st_size / 1e6)
    images = np.load(path, mmap_mode="c")  # copy-on-write: writable views for torch, the file never changes
    if images.shape != shape:
        raise OSError(f"decoded cache {path} has shape {images.shape}, expected {shape}; delete it")
    return ArrayImages(images, source.labels, spec)


def _disk_key(source: FileImages, spec: CacheSpec) -> str:
    """The files' identity (taken once, when the dataset was read) with the geometry."""
    from zoo.data.scan_record import keyed

    return keyed(source.identity, spec.key()) if source.identity else stat_fingerprint(source.paths, spec.key())


def _image(source: ImageSource, index: int, draft: int | None) -> Image.Image:
    if isinstance(source, FileImages):
        from zoo.data.decode import BadImageError, decode_rgb

        try:
            return decode_rgb(source.paths[index], draft_size=(draft, draft) if draft else None)
        except BadImageError as exc:  # it decoded when the dataset was checked: the file changed since
            raise DataError(f"image {source.paths[index]} can no longer be read ({exc}); it changed after zoo "
                            "checked it: run again to check the files anew") from exc
    return source.load(index)


def _fast_loader(source: ImageSource, side: int, mode: str = "crop") -> Callable[[int], np.ndarray]:
    def load(index: int) -> np.ndarray:
        image = _image(source, index, draft=side)
        if mode != "crop":
            return _fit_square(image, side, mode)
        scale = side / min(image.size)
        w, h = max(side, round(image.width * scale)), max(side, round(image.height * scale))
        image = image.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=None)
        left, top = (w - side) // 2, (h - side) // 2
        return np.asarray(image.crop((left, top, left + side, top + side)))

    return load


def _fit_square(image: Image.Image, side: int, mode: str) -> np.ndarray:
    """squash or letterbox (zoo.imageops.fit_square's geometry) with PIL, for training squares."""
    from zoo.imageops import letterbox_size

    height, width = (side, side) if mode == "squash" else letterbox_size(image.height, image.width, side)
    resized = image.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=None)
    if (height, width) == (side, side):
        return np.asarray(resized)
    square = Image.new("RGB", (side, side))
    square.paste(resized, (round((side - width) / 2), round((side - height) / 2)))
    return np.asarray(square)


def _exact_loader(source: ImageSource, spec: CacheSpec) -> Callable[[int], np.ndarray]:
    from zoo.data.transforms import eval_geometry

    pre = Preprocessing(input_size=spec.side, resize_size=spec.resize, interpolation=spec.interpolation)
    geometry = eval_geometry(pre.with_resize(spec.mode))

    def load(index: int) -> np.ndarray:
        return geometry(_image(source, index, draft=None)).permute(1, 2, 0).numpy()

    return load
