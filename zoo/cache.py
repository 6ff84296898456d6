"""What zoo keeps in its cache folder, how big it is, and clearing it (`zoo cache`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from zoo.errors import ZooError
from zoo.hub import cache_dir

# sub-folder -> what it holds; all of it but "datasets" can be made again (downloaded or decoded)
CACHE_KINDS = {
    "decoded": "decode-once image caches written by --cache disk",
    "weights": "published model weights",
    "datasets": "downloaded named datasets",
    "downloads": "dataset archives as downloaded",
    "extracted": "archives given as --data, extracted",
    "plugins": "what each plugin registered last time (so listing does not import it)",
}
# What `zoo cache clear all` means: everything zoo can make again. "datasets" is where users put data
# sets they fetched by hand (zoo's own messages tell them to), so it is cleared only when named.
CLEAR_ALL = tuple(kind for kind in CACHE_KINDS if kind != "datasets")


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


def resolve_kinds(kinds: list[str]) -> list[str]:
    """Kinds named on the command line; "all" is CLEAR_ALL (never "datasets" unless named too)."""
    unknown = [k for k in kinds if k not in CACHE_KINDS and k != "all"]
    if unknown or not kinds:
        raise ZooError(f"unknown cache kind {', '.join(map(repr, unknown)) or '(none given)'}; "
                       f"use one or more of {', '.join(CACHE_KINDS)}, or all (everything but datasets)")
    chosen = [k for k in CLEAR_ALL if "all" in kinds] + [k for k in kinds if k != "all"]
    return list(dict.fromkeys(chosen))


@dataclass
class Cleared:
    freed: int  # bytes of the files deleted
    in_use: list[Path]  # files a running zoo process reads or writes: left alone


def clear_cache(kinds: list[str]) -> Cleared:
    """Delete the files of the named cache folders ("all": CLEAR_ALL), except files a running zoo process
    holds (a decoded cache a run reads, one being written). Unknown kinds are an error before anything goes."""
    from zoo.files import in_use

    kinds = resolve_kinds(kinds)
    cleared = Cleared(0, [])
    for entry in cache_usage():
        if entry.kind not in kinds or not entry.path.is_dir():
            continue
        for path in sorted(entry.path.rglob("*"), reverse=True):  # files before their folders
            if path.is_dir() and not path.is_symlink():
                _remove_if_empty(path)
            elif in_use(path):
                cleared.in_use.append(path)
            else:
                size = path.lstat().st_size
                path.unlink(missing_ok=True)
                cleared.freed += size
        _remove_if_empty(entry.path)
    return cleared


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass
