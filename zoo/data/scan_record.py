"""The decode check of a folder's files, remembered: a second run over the same files skips it.

Scanning decodes every file (drop_bad_files): 27 s for CIFAR-10's 60,000 JPEGs on the 2-core box,
20 s on the H100 machine, paid again by every run. The result (which files are unreadable, and why)
is kept under zoo's cache, keyed by the files' identities (zoo.files.stat_fingerprint: path, inode,
size, modification and status-change times), so editing, adding or removing a file scans again. Unreadable files are still named, one warning each.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from zoo.data.decode import ScanResult, scan_images, warn_skipped
from zoo.files import DiskFullError, atomic_write_json, read_json, stat_fingerprint

log = logging.getLogger("zoo.data")
VERSION = 1  # bump when the decode rules change what counts as unreadable


def scan_remembered(paths: Sequence[str | Path], warn: bool = True) -> ScanResult:
    """scan_images(paths), or what it found the last time these very files were scanned."""
    from zoo.hub import cache_dir

    try:
        record_file = cache_dir("scans") / f"{stat_fingerprint(paths, f'scan-v{VERSION}')}.json"
    except OSError:  # a file vanished between listing and now: the scan reports it
        return scan_images(paths, warn)
    if record_file.is_file():
        try:
            bad = {path: reason for path, reason in read_json(record_file, "scan record")["bad"]}
        except Exception:  # noqa: BLE001 - an unreadable record only costs a scan
            bad = None
        if bad is not None:
            result = ScanResult()
            for index, path in enumerate(paths):
                if str(path) in bad:
                    result.bad.append((str(path), bad[str(path)]))
                else:
                    result.good.append(index)
            if warn:
                warn_skipped(result.bad)
            return result
    result = scan_images(paths, warn)
    try:
        atomic_write_json(record_file, {"bad": result.bad})
    except (OSError, DiskFullError) as exc:  # a read-only or full cache folder: scanning each time is the cost
        log.debug("scan record not kept: %s", exc)
    return result
