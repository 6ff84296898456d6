"""Downloads are verified and atomic; archives cannot write outside their folder."""

import hashlib
import io
import tarfile
import zipfile

import pytest

from zoo.errors import DownloadError
from zoo.hub import download_file, extract_archive


def test_download_verifies_sha256(loopback_server, tmp_path):
    folder, url = loopback_server
    payload = b"weights" * 1000
    (folder / "f.bin").write_bytes(payload)
    dest = download_file(f"{url}/f.bin", tmp_path / "out" / "f.bin", "sha256:" + hashlib.sha256(payload).hexdigest())
    assert dest.read_bytes() == payload


def test_download_md5_mismatch_leaves_nothing(loopback_server, tmp_path):
    folder, url = loopback_server
    (folder / "f.bin").write_bytes(b"tampered")
    out = tmp_path / "out"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_file(f"{url}/f.bin", out / "f.bin", "md5:" + "0" * 32)
    assert list(out.iterdir()) == []


def test_missing_url_is_one_line(loopback_server, tmp_path):
    _, url = loopback_server
    with pytest.raises(DownloadError, match=r"cannot download .*nothing.bin.*put it at") as excinfo:
        download_file(f"{url}/nothing.bin", tmp_path / "nothing.bin")
    assert "\n" not in str(excinfo.value) and not (tmp_path / "nothing.bin").exists()


def _tar_with(tmp_path, members: dict[str, bytes], name="a.tar.gz"):
    path = tmp_path / name
    with tarfile.open(path, "w:gz") as tf:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_extract_tar(tmp_path):
    archive = _tar_with(tmp_path, {"data/x.txt": b"hello"})
    target = extract_archive(archive, tmp_path / "ds")
    assert (target / "data" / "x.txt").read_bytes() == b"hello"


@pytest.mark.parametrize("member", ["../escape.txt", "/tmp/zoo-abs-escape.txt", "a/../../escape.txt"])
def test_malicious_tar_is_refused(tmp_path, member):
    archive = _tar_with(tmp_path, {"ok.txt": b"x", member: b"evil"})
    with pytest.raises(DownloadError, match="outside the target folder"):
        extract_archive(archive, tmp_path / "ds")
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "ds").exists()


def test_tar_symlink_escape_is_refused(tmp_path):
    path = tmp_path / "link.tar"
    with tarfile.open(path, "w") as tf:
        info = tarfile.TarInfo("evil-link")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../etc/passwd"
        tf.addfile(info)
    with pytest.raises(DownloadError, match="outside the target folder"):
        extract_archive(path, tmp_path / "ds")


def test_malicious_zip_is_refused(tmp_path):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../escape.txt", "evil")
    with pytest.raises(DownloadError, match="outside the target folder"):
        extract_archive(path, tmp_path / "ds")
    assert not (tmp_path / "escape.txt").exists()
