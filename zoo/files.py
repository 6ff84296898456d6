"""Writing files so that nobody ever sees half of one, and the few checks that go with it.

Every file zoo writes (checkpoints, metadata, metrics, exports, downloads, decoded caches) goes
through ``atomic_target``: the bytes go to a temporary file in the same folder, are flushed to
disk, and the file is renamed over its final name only when complete. A kill at any moment
leaves the old file or the new one, never a mix; a full disk is one clear line.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from zoo.errors import ZooError


class DiskFullError(ZooError):
    """No space left while writing a file (the previous version of it is intact)."""


def publish_mode(path: str | Path) -> None:
    """mkstemp makes 0600 files; give finished outputs the usual permissions."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


@contextmanager
def atomic_target(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside ``path`` to write; renamed over ``path`` if the block succeeds,
    deleted if it fails. ``suffix`` keeps an extension libraries insist on (numpy's .npy)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        publish_mode(tmp)
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        if _is_disk_full(exc):
            raise DiskFullError(f"no space left on device writing {path}; the previous version of it is intact, "
                                "free some space and run again") from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_target(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def read_json(path: str | Path, what: str = "file") -> Any:
    """JSON from a file, or one line naming the file when it is not JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ZooError(f"{what} {path} is not valid JSON (line {exc.lineno}: {exc.msg}); "
                       "it is damaged: restore it or write it again") from exc
    except UnicodeDecodeError as exc:
        raise ZooError(f"{what} {path} is not a text file; it is damaged: restore it or write it again") from exc


def check_writable(folder: str | Path, error: type[ZooError], option: str = "--output") -> None:
    """Create ``folder`` if needed and prove a file can be written there, or raise ``error`` saying so."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise error(f"output folder {folder} is not writable ({exc.strerror}); choose another {option}") from exc


def make_folder(folder: str | Path, error: type[ZooError], option: str = "--output") -> list[Path]:
    """``check_writable``, returning the folders it had to create (deepest first), so that a command that
    ends up keeping nothing can take them away again with ``remove_empty_folders``."""
    folder = Path(folder)
    missing = [p for p in [folder, *folder.parents] if not p.exists()]
    check_writable(folder, error, option)
    return missing


def remove_empty_folders(folders: list[Path]) -> None:
    """Remove each folder that is empty, deepest first, stopping at the first one that is not."""
    for path in folders:
        try:
            path.rmdir()
        except OSError:
            return


def _fsync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _is_disk_full(exc: BaseException) -> bool:
    """ENOSPC as an OSError, or as torch.save reports it (a RuntimeError from its zip writer)."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    text = str(exc)
    return "No space left" in text or ("inline_container" in text and "write" in text.lower())


def stat_fingerprint(paths, salt: str = "") -> str:
    """A short digest of files' identities, no content read: absolute path, inode, size, modification
    and status-change times. It changes when a file is added, removed, replaced or edited, also when
    the new bytes have the old size and `touch -r` put the old modification time back: the kernel sets
    the status-change time (ctime) on every write and rename, and no tool can set it back. (A copy of
    the data on another machine or folder is new files: caches keyed on it are made again.)"""
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    names = list(paths.absolute()) if hasattr(paths, "absolute") else [os.path.abspath(p) for p in paths]

    def identities(chunk: list[str]) -> bytes:  # os.stat waits on the file system with the GIL released
        out = []
        for name in chunk:
            stat = os.stat(name)
            out.append(f"|{name}|{stat.st_ino}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ctime_ns}")
        return "".join(out).encode()

    step = 20_000
    chunks = [names[i:i + step] for i in range(0, len(names), step)]
    digest = hashlib.sha256(f"{salt}|{len(names)}".encode())
    with ThreadPoolExecutor(max_workers=min(8, len(chunks) or 1)) as pool:
        for part in pool.map(identities, chunks):
            digest.update(part)
    return digest.hexdigest()[:32]


def hold_shared(path: str | Path) -> int | None:
    """A shared flock on ``path`` held until the process exits (``zoo cache clear`` skips files held so);
    None if the file was removed or replaced before the lock was taken."""
    try:
        import fcntl
    except ModuleNotFoundError:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        same = os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        same = False
    if not same:
        os.close(fd)
        return None
    _HELD.append(fd)
    return fd


def in_use(path: str | Path) -> bool:
    """Another process (or this one) holds a lock on ``path``: it is being written or read."""
    try:
        import fcntl
    except ModuleNotFoundError:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's lock


_HELD: list[int] = []  # descriptors whose shared locks mark files in use for the life of the process
