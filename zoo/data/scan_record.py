"""The read of a folder's files, remembered: a second run (or check) over the same files reads none.

Scanning reads every file once (zoo.data.decode.scan_images: a decode proves it readable, its SHA-1
finds duplicates between splits, its header gives its size): 27 s for CIFAR-10's 60,000 JPEGs on the
2-core box, 20 s on the H100 machine, paid again by every run before this record. The result (which
files are unreadable and why, every file's size and SHA-1) is kept under zoo's cache as one .npz,
keyed by the files' identities (zoo.files.stat_fingerprint: path, inode, size, modification and
status-change times, no content read), so editing, adding or removing a file scans again.
Unreadable files are still named, one warning each.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from zoo.data.decode import ScanResult, scan_images, warn_skipped
from zoo.files import DiskFullError, atomic_target, stat_fingerprint

log = logging.getLogger("zoo.data")
VERSION = 2  # bump when the decode rules change what counts as unreadable, or the record's contents


def files_identity(paths: Sequence[str | Path]) -> str:
    """The identity of these files as they are now (stat only); what scan records and caches are keyed by."""
    return stat_fingerprint(paths, "files")


def scan_remembered(paths: Sequence[str | Path], warn: bool = True, identity: str | None = None) -> ScanResult:
    """scan_images(paths), or what it found the last time these very files were scanned (``identity``:
    files_identity(paths), when the caller has it)."""
    from zoo.hub import cache_dir

    try:
        identity = identity or files_identity(paths)
    except OSError:  # a file vanished between listing and now: the scan reports it
        return scan_images(paths, warn)
    record_file = cache_dir("scans") / f"{keyed(identity, f'scan-v{VERSION}')}.npz"
    result = _read(record_file, paths)
    if result is not None:
        if warn:
            warn_skipped(result.bad)
        return result
    result = scan_images(paths, warn)
    try:
        with atomic_target(record_file, suffix=".npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, sizes=result.sizes, digests=result.digests, bad=np.array(json.dumps(result.bad)))
    except (OSError, DiskFullError) as exc:  # a read-only or full cache folder: scanning each time is the cost
        log.debug("scan record not kept: %s", exc)
    return result


def keyed(identity: str, salt: str) -> str:
    import hashlib

    return hashlib.sha256(f"{salt}|{identity}".encode()).hexdigest()[:32]


def _read(record_file: Path, paths: Sequence[str | Path]) -> ScanResult | None:
    if not record_file.is_file():
        return None
    try:
        with np.load(record_file, allow_pickle=False) as record:
            sizes, digests, bad = record["sizes"], record["digests"], json.loads(str(record["bad"]))
    except Exception:  # noqa: BLE001 - an unreadable record only costs a scan
        return None
    if len(sizes) != len(paths):
        return None
    unreadable = {path for path, _ in bad}
    good = [i for i, path in enumerate(paths) if str(path) not in unreadable] if unreadable else list(range(len(paths)))
    return ScanResult(good, [(path, reason) for path, reason in bad], sizes, digests)
