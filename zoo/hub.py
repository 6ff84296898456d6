"""Downloads that are verified and atomic, and archive extraction that stays inside its folder."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from zoo.errors import DownloadError
from zoo.files import atomic_target

CHUNK = 1 << 20


def cache_dir(*parts: str) -> Path:
    """zoo's cache folder: $ZOO_CACHE, else $XDG_CACHE_HOME/zoo, else ~/.cache/zoo."""
    base = os.environ.get("ZOO_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")
    ) / "zoo"
    return Path(base, *parts)


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def parse_checksum(checksum: str) -> tuple[str, str]:
    """'sha256:abc', 'md5:abc' or a bare (prefix of a) SHA-256 -> (algorithm, hex)."""
    algorithm, _, hexdigest = checksum.rpartition(":")
    return (algorithm or "sha256").lower(), hexdigest.lower()


def download_file(url: str, dest: Path, checksum: str = "", timeout: float = 30.0, progress: bool = False) -> Path:
    """Fetch url to dest, checking its digest; a failure leaves no file behind.

    The body streams into a temporary file in dest's folder, is hashed on the way, and is renamed
    over dest only once the digest matches, so a half-finished or wrong download never sits at
    the final path. ``checksum`` may be a digest prefix (torchvision's file-name convention).
    """
    dest = Path(dest)
    algorithm, expected = parse_checksum(checksum) if checksum else ("sha256", "")
    digest = hashlib.new(algorithm)
    with atomic_target(dest, suffix=".part") as tmp, open(tmp, "wb") as out:
        try:
            response = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - http(s) URLs we publish
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DownloadError(
                f"cannot download {url} ({reason}); if this machine is offline, fetch the file "
                f"elsewhere and put it at {dest}"
            ) from exc
        with response:
            total = int(response.headers.get("Content-Length") or 0)
            bar = _progress_bar(dest.name, total) if progress else None
            while chunk := response.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                if bar:
                    bar[0].update(bar[1], advance=len(chunk))
            if bar:
                bar[0].stop()
        actual = digest.hexdigest()
        if expected and not actual.startswith(expected):
            raise DownloadError(
                f"checksum mismatch for {url}: expected {algorithm} {expected}, got {actual[: len(expected)]}; "
                "the file was discarded, try again or check the URL"
            )
    return dest


def _progress_bar(name: str, total: int):
    from rich.progress import Progress

    bar = Progress(transient=True)
    task = bar.add_task(f"downloading {name}", total=total or None)
    bar.start()
    return bar, task


def verify_file(path: Path, checksum: str) -> bool:
    algorithm, expected = parse_checksum(checksum)
    return file_digest(path, algorithm).startswith(expected)


def extract_archive(archive: Path, target: Path) -> Path:
    """Unpack a .tar(.gz|.bz2|.xz) or .zip into target, refusing members that would land outside.

    Extraction goes into a temporary sibling folder that is renamed into place at the end, so an
    interrupted extraction never looks complete.
    """
    archive, target = Path(archive), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for member in zf.namelist():
                    _check_inside(staging, member, archive)
                zf.extractall(staging)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                for member in tf.getmembers():
                    _check_inside(staging, member.name, archive)
                    if member.issym() or member.islnk():
                        _check_inside(staging, str(Path(member.name).parent / member.linkname), archive)
                    if member.isdev():
                        raise DownloadError(f"archive {archive} holds a device file {member.name!r}; refusing it")
                try:
                    tf.extractall(staging, filter="data")
                except tarfile.FilterError as exc:  # what the "data" filter refuses: links out, odd modes
                    raise DownloadError(f"archive {archive} has a member {exc.tarinfo.name!r} that the safe "
                                        f"extraction refuses ({type(exc).__name__}); refusing the archive") from exc
        else:
            raise DownloadError(f"{archive} is neither a tar nor a zip archive; delete it and download again")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _check_inside(root: Path, member: str, archive: Path) -> None:
    resolved = (root / member).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise DownloadError(
            f"archive {archive} has a member {member!r} that points outside the target folder; refusing it"
        )
