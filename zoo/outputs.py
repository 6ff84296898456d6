"""Folders zoo fills as a whole (exports, evaluation reports): who owns them, and how they change.

The rule is the run folder's (zoo.runs): zoo writes into a folder only if it is empty or carries
zoo's marker for that kind of output. The new contents are built in a hidden staging folder beside
the final one (``.<name>.staging-<pid>``, holding the marker) while an exclusive lock on
``.<name>.zoo-lock`` keeps a second process out, and swapped in only when complete: a kill at any
moment leaves the previous contents whole (plus a staging folder that the next run removes), and
what is in the folder always belongs together. No torch here.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from zoo.errors import InUseError, ZooError
from zoo.files import atomic_write_json, make_folder, remove_empty_folders

LOCK_SUFFIX = ".zoo-lock"


def as_folder(path: str | Path) -> Path:
    """A path whose last part names the folder (`.` and `..` resolved), so staging and lock have a name."""
    path = Path(path)
    return path.resolve() if path.name in ("", ".", "..") else path


def check_owned_or_empty(folder: Path, marker: str, error: type[ZooError], option: str,
                         legacy: Callable[[Path], bool] | None = None) -> None:
    """Refuse a folder zoo did not make (no ``marker``, not empty): nothing in it is touched."""
    if folder.exists() and not folder.is_dir():
        raise error(f"{folder} is a file, not a folder; choose another {option}")
    if not folder.is_dir() or (folder / marker).is_file() or (legacy is not None and legacy(folder)):
        return
    if any(folder.iterdir()):
        raise error(f"{folder} is a folder zoo did not make and it is not empty; zoo will not write into it: "
                    f"choose another {option} (or empty it)")


def leftovers(final: Path, kind: str, marker: str) -> list[Path]:
    """``.<name>.<kind>-<pid>`` folders beside ``final`` that zoo provably made (its marker, or empty:
    killed between mkdir and the marker), oldest first."""
    parent = final.parent
    if not parent.is_dir():
        return []
    pattern = re.compile(rf"\.{re.escape(final.name)}\.{kind}-\d+")
    found = [p for p in parent.iterdir() if pattern.fullmatch(p.name) and p.is_dir() and not p.is_symlink()
             and ((p / marker).is_file() or not any(p.iterdir()))]
    return sorted(found, key=lambda p: p.stat().st_mtime)


def recover_interrupted_swap(final: Path, marker: str) -> None:
    """A kill between the two renames of ``swap_in`` left the old contents aside: put them back."""
    if not final.exists():
        olds = leftovers(final, "old", marker)
        if olds:
            os.replace(olds[-1], final)


def remove_leftovers(final: Path, marker: str) -> None:
    for leftover in [*leftovers(final, "old", marker), *leftovers(final, "staging", marker)]:
        shutil.rmtree(leftover, ignore_errors=True)


def new_staging(final: Path, marker: str) -> Path:
    staging = final.parent / f".{final.name}.staging-{os.getpid()}"
    if staging.exists():  # a pid reused after a kill: a folder zoo made (callers removed leftovers first)
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    atomic_write_json(staging / marker, {"format": 1})
    return staging


def swap_in(staging: Path, final: Path) -> None:
    """Put the complete ``staging`` folder in ``final``'s place.

    A folder zoo owns is renamed aside and the new one renamed in (two renames; see
    ``recover_interrupted_swap``). An empty folder the user made (maybe the shell's working folder)
    stays and receives the entries, the marker first, so a kill part-way leaves a folder marked as
    zoo's that the next command completes or replaces."""
    if final.is_dir() and not any(final.iterdir()):
        entries = sorted(staging.iterdir(), key=lambda p: not p.name.startswith(".zoo"))
        for entry in entries:
            os.replace(entry, final / entry.name)
        staging.rmdir()
        return
    old = final.parent / f".{final.name}.old-{os.getpid()}"
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def exclusive_lock(lock_file: Path, what: str, instead: str = "choose another --output") -> Iterator[None]:
    """An flock on ``lock_file`` (created, and removed on release); the kernel drops it when the process
    dies, so a killed run never leaves a run locked. A file of that name that is not a lock file (it
    holds something other than a pid) is refused, never truncated or removed."""
    try:
        import fcntl
    except ModuleNotFoundError:  # not POSIX: no locking
        yield
        return
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        content = os.read(fd, 64).decode(errors="replace").strip()
        if content and not re.fullmatch(r"\d+", content):  # a file of the user's that happens to have the name
            os.close(fd)
            raise ZooError(f"{lock_file} is not a zoo lock file; zoo will not touch it: move it away or "
                                f"{instead}")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InUseError(f"{what} is in use by another zoo process (pid {content or '?'}); wait for it to "
                                f"finish or {instead}") from None
        # the holder before us may have removed the file after we opened it: lock the file that is there
        if os.path.exists(lock_file) and os.stat(lock_file).st_ino == os.fstat(fd).st_ino:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.unlink(lock_file)
        os.close(fd)


@contextmanager
def staged_output(final: str | Path, marker: str, what: str, error: type[ZooError], option: str = "--output",
                  legacy: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Yield a staging folder to fill; swapped into ``final`` when the block succeeds, removed (with any
    folders made above it) when it fails. ``final`` must be empty or zoo's (``marker``; ``legacy`` accepts
    folders zoo made before markers existed)."""
    final = as_folder(final)
    with ExitStack() as stack:
        stack.callback(remove_empty_folders, make_folder(final.parent, error, option))
        stack.enter_context(exclusive_lock(final.parent / f".{final.name}{LOCK_SUFFIX}", f"{what} {final}",
                                           instead=f"choose another {option}"))
        recover_interrupted_swap(final, marker)
        check_owned_or_empty(final, marker, error, option, legacy)
        remove_leftovers(final, marker)
        staging = new_staging(final, marker)
        try:
            yield staging
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        swap_in(staging, final)
