"""Decoding images the way real folders need: any mode to correct RGB, bad files named and skipped.

Rules (see ../shared/data/bad_inputs/expected.json):
- hidden files, OS metadata and non-image extensions are not candidates at all;
- grayscale, palette, 1-bit, CMYK, 16-bit and alpha images become RGB (16-bit is scaled, not
  clipped; alpha is composited on white); EXIF orientation is applied; GIFs give their first frame;
- empty, truncated, non-image and LFS-pointer files are skipped with one warning each;
- images declaring more than MAX_PIXELS pixels are refused before they are decoded.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from zoo.data.parallel import map_indices

log = logging.getLogger("zoo.data")

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
MAX_PIXELS = 64_000_000  # far above any photo a classifier trains on; bombs declare far more


class BadImageError(Exception):
    """One file that cannot be used; the message says why."""


def is_candidate(path: Path) -> bool:
    """Whether a file should be considered an image at all (no warning for the rest)."""
    return _candidate_name(Path(path).name)


def open_checked(path: str | Path | BinaryIO, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open an image lazily (header only) and refuse decompression bombs before decoding. ``path`` may
    be a file object (bytes a server received: nothing touches the disk)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImageError(f"refused: declares too many pixels ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise BadImageError(f"not an image ({_sniff(path)})") from exc
    except OSError as exc:
        raise BadImageError(f"unreadable ({exc})") from exc
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise BadImageError(f"refused: declares {width}x{height} pixels, more than {max_pixels:,}")
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB correctly (orientation, 16-bit scaling, alpha on white)."""
    image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        # 16-bit samples: scale to 8 bits; convert("RGB") would clip nearly everything to white
        array = np.asarray(image, dtype=np.float64) / 257.0
        image = Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), mode="L")
    elif mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8), mode="L")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def decode_rgb(path: str | Path | BinaryIO, draft_size: tuple[int, int] | None = None, declared: bool = False):
    """Decode one file to an RGB PIL image, or raise BadImageError naming what is wrong.

    ``draft_size`` lets JPEGs decode at a reduced scale (much faster) when the caller will
    shrink the image anyway; with ``declared`` only the size the file declares comes back (the decode
    still proves the file is readable).
    """
    image = open_checked(path)
    size = image.size
    try:
        if draft_size is not None and image.format == "JPEG":
            image.draft("RGB", draft_size)
        image.seek(0)  # first frame of animations
        image.load()
        rgb = to_rgb(image)
        return size if declared else rgb
    except BadImageError:
        raise
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImageError(f"corrupt or truncated ({exc})") from exc
    finally:
        image.close()


def _sniff(path: str | Path | BinaryIO) -> str:
    """A short guess at what a non-image file is, for the warning."""
    try:
        if hasattr(path, "read"):
            path.seek(0)
            head = path.read(200)
        else:
            with open(path, "rb") as f:
                head = f.read(200)  # the header only: the file may be gigabytes
    except OSError:
        return "unreadable"
    if not head:
        return "empty file"
    if head.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer: run `git lfs pull`"
    if head.lstrip().lower().startswith((b"<!doctype html", b"<html")):
        return "an HTML page saved with an image name"
    if head.startswith(b"\xff\xd8"):
        return "JPEG header with unreadable data"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "a text file"
    return "unknown format"


@dataclass
class ScanResult:
    """Which files decode, and which were skipped with the reason."""

    good: list[int] = field(default_factory=list)  # indices into the scanned list
    bad: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    sizes: np.ndarray | None = None  # (N, 2) width, height of every scanned file (0, 0: unreadable)
    digests: np.ndarray | None = None  # (N, 20) SHA-1 of every file's bytes (duplicates between splits)


def scan_images(paths: Sequence[str | Path], warn: bool = True) -> ScanResult:
    """Read every file once: its SHA-1, its size, and a decode (JPEGs at reduced scale) to find the ones
    that cannot be used."""

    def check(index: int) -> tuple[str | None, tuple[int, int], bytes]:
        try:
            with open(paths[index], "rb") as f:
                data = f.read()
        except OSError as exc:
            return f"unreadable ({exc})", (0, 0), bytes(20)
        digest = hashlib.sha1(data).digest()
        try:
            image = decode_rgb(io.BytesIO(data), draft_size=(64, 64), declared=True)
        except BadImageError as exc:
            return str(exc), (0, 0), digest
        return None, image, digest

    result = ScanResult()
    checked = map_indices(check, len(paths))
    for index, (path, (problem, _, _)) in enumerate(zip(paths, checked)):
        if problem is None:
            result.good.append(index)
        else:
            result.bad.append((str(path), problem))
    result.sizes = np.array([size for _, size, _ in checked], dtype=np.int32).reshape(len(paths), 2)
    result.digests = np.frombuffer(b"".join(d for _, _, d in checked), dtype=np.uint8).reshape(len(paths), 20)
    if warn:
        warn_skipped(result.bad)
    return result


SHOWN_SKIPS = 10


def warn_skipped(bad: Sequence[tuple[str, str]]) -> None:
    """One warning per unreadable file for the first ten, then one line with the count (100,000 empty
    files are one message, not 100,000)."""
    for path, problem in bad[:SHOWN_SKIPS]:
        log.warning("skipping %s: %s", path, problem)
    if len(bad) > SHOWN_SKIPS:
        log.warning("... and %d more unreadable files skipped (`zoo data check` lists every one)",
                    len(bad) - SHOWN_SKIPS)


def list_image_files(folder: Path | str) -> list[str]:
    """Image candidates directly inside folder as sorted path strings (hidden/junk/non-image files left
    out). os.scandir: the file type comes with the directory entry, no stat per file."""
    base = os.fspath(folder)
    with os.scandir(base) as entries:
        names = [e.name for e in entries if _candidate_name(e.name) and e.is_file()]
    return [os.path.join(base, name) for name in sorted(names)]


def list_folders(folders: Sequence[Path]) -> list[list[str]]:
    """list_image_files of each folder, listed by threads (scandir waits on the file system, not the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    if len(folders) < 2:
        return [list_image_files(f) for f in folders]
    with ThreadPoolExecutor(max_workers=min(16, len(folders))) as pool:
        return list(pool.map(list_image_files, folders))


def _candidate_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def iter_class_folders(root: Path) -> Iterable[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
