"""What zoo keeps in its cache folder, how big it is, and clearing it (`zoo cache`)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from zoo.errors import ZooError
from zoo.hub import cache_dir

# sub-folder -> what it holds; all of it can be made again (downloaded or decoded)
CACHE_KINDS = {
    "decoded": "decode-once image caches written by --cache disk",
    "weights": "published model weights",
    "datasets": "downloaded named datasets",
    "downloads": "dataset archives as downloaded",
    "extracted": "archives given as --data, extracted",
}


@dataclass
class CacheUsage:
    kind: str
    path: Path
    files: int
    bytes: int
    description: str


def cache_usage() -> list[CacheUsage]:
    """Files and bytes under each kind of cache folder (0 where it does not exist)."""
    usage = []
    for kind, description in CACHE_KINDS.items():
        folder = cache_dir(kind)
        files = [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()] if folder.is_dir() else []
        usage.append(CacheUsage(kind, folder, len(files), sum(p.stat().st_size for p in files), description))
    return usage


def clear_cache(kinds: list[str]) -> int:
    """Delete the named cache folders; the bytes freed. Unknown kinds are an error before anything goes."""
    unknown = [k for k in kinds if k not in CACHE_KINDS]
    if unknown or not kinds:
        raise ZooError(f"unknown cache kind {', '.join(map(repr, unknown)) or '(none given)'}; "
                       f"use one or more of {', '.join(CACHE_KINDS)}, or all")
    freed = 0
    for entry in cache_usage():
        if entry.kind in kinds and entry.path.is_dir():
            shutil.rmtree(entry.path)
            freed += entry.bytes
    return freed
