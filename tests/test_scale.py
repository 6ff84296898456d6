"""Start-up that scales: packed paths, listing by scandir, a remembered check that reads no file, and a
decoded cache the next run reads back instead of decoding (figures: benchmarks/scale.py)."""

import builtins
import os
import subprocess
import sys

import numpy as np
import pytest

import zoo
from tests.conftest import COLORS, ROOT, write_image
from zoo.data.dataset import FileImages, PackedPaths


def test_packed_paths_are_a_sequence_of_the_paths_given():
    given = ["/data/a/1.jpg", "/data/a/2.jpg", "/data/bé/3.png", "/data/b/4.jpg"]
    packed = PackedPaths(given)
    assert list(packed) == given and len(packed) == 4 and packed[-1] == given[-1] and packed[2] == given[2]
    assert packed.prefix == "/data/" and list(packed.take([3, 0])) == [given[3], given[0]]
    assert packed == given and list(packed[1:3]) == given[1:3]
    with pytest.raises(IndexError):
        packed[4]
    relative = PackedPaths(["../x/a.jpg", "../x/b.jpg"])
    assert list(relative.absolute()) == [os.path.abspath("../x/a.jpg"), os.path.abspath("../x/b.jpg")]
    many = PackedPaths([f"/data/train/class{i % 10}/{i:07d}.jpg" for i in range(10_000)])
    assert many.nbytes() < 40 * 10_000  # its characters and an offset; a list of str takes ~100 B more each


def test_file_images_keep_scan_facts_through_subsets():
    images = FileImages([f"/d/{i}.jpg" for i in range(5)], np.arange(5), identity="abc",
                        sizes=np.arange(10).reshape(5, 2), digests=np.zeros((5, 20), np.uint8))
    part = images.subset([4, 1])
    assert list(part.paths) == ["/d/4.jpg", "/d/1.jpg"] and part.sizes.tolist() == [[8, 9], [2, 3]]
    assert part.identity not in (None, "abc") and part.identity == images.subset([4, 1]).identity


@pytest.fixture
def folder(tmp_path):
    for split, count in (("train", 12), ("val", 4)):
        for i in range(count):
            color = ("red", "green")[i % 2]
            write_image(tmp_path / "data" / split / color / f"{split}{i}.jpg", COLORS[color], size=20 + i, seed=i + (100 if split == "val" else 0))
    (tmp_path / "data" / "train" / "red" / "notes.txt").write_text("not an image")
    # the same photo in both splits: a duplicate the check must name
    (tmp_path / "data" / "val" / "red" / "copy.jpg").write_bytes((tmp_path / "data" / "train" / "red" / "train0.jpg")
                                                                 .read_bytes())
    return tmp_path / "data"


def _check(folder, tmp_path):
    env = {**os.environ, "ZOO_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "zoo", "data", "check", str(folder)], capture_output=True, text=True,
                          env=env, check=True).stdout


def test_a_remembered_check_reads_no_image_and_says_the_same(folder, tmp_path, monkeypatch):
    cold = _check(folder, tmp_path)
    assert "duplicates 1 images" in cold and "copy.jpg" in cold and "20x20 (smallest w x h) to 31x31" in cold
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    real_open = builtins.open

    def no_image_reads(file, *args, **kwargs):
        if str(file).endswith(".jpg"):
            raise AssertionError(f"{file} was read")
        return real_open(file, *args, **kwargs)

    from zoo.data.check import check_dataset

    monkeypatch.setattr(builtins, "open", no_image_reads)
    report = check_dataset(zoo.create_dataset(str(folder), check=False))
    monkeypatch.undo()
    assert [os.path.basename(b) for _, b in report.duplicates] == ["copy.jpg"]
    assert report.size_range == {"min": [20, 20], "max": [31, 31]}
    assert _check(folder, tmp_path) == cold
    os.utime(folder / "val" / "red" / "copy.jpg", ns=(1, 1))  # an edited file: the files are read again
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(builtins, "open", no_image_reads)
    with pytest.raises(AssertionError, match="was read"):
        zoo.create_dataset(str(folder), check=False)


def test_the_next_run_reads_the_decoded_cache_back(folder, tmp_path, monkeypatch):
    import zoo.data.decoded_cache as decoded_cache
    from zoo.data.decoded_cache import CacheSpec, decode_once

    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(decoded_cache, "REMEMBER_AFTER_S", 0.0)  # keep even a quick decode
    spec = CacheSpec(16, 16)
    first = decode_once(zoo.create_dataset(str(folder)).train, spec)
    assert len(list((tmp_path / "cache" / "decoded").glob("*.npy"))) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(decoded_cache, "_fast_loader", no_decoding)
    again = decode_once(zoo.create_dataset(str(folder)).train, spec)
    assert np.array_equal(again.images, first.images) and not isinstance(again.images, np.memmap)
    write_image(folder / "train" / "red" / "extra.jpg", COLORS["red"], seed=9)  # other files: decoded anew
    with pytest.raises(AssertionError, match="decoded again"):
        decode_once(zoo.create_dataset(str(folder)).train, spec)
