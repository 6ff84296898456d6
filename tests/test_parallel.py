"""Per-image work in forked processes gives exactly what threads give: in order, bad files found,
the on-disk cache filled through its shared mapping, errors raised in the caller."""

import multiprocessing
import os

import numpy as np
import pytest

import zoo
import zoo.data.parallel as parallel
from zoo.data.decode import BadImageError, scan_images
from zoo.data.decoded_cache import CacheSpec, decode_once, decode_once_to_disk
from zoo.specs import Preprocessing

pytestmark = pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")


@pytest.fixture
def use_processes(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_FOR_PROCESSES", 4)  # the tests' few files go to forked workers


def test_results_come_back_in_order_from_other_processes(use_processes):
    results = parallel.map_indices(lambda i: (i * i, os.getpid()), 50, workers=2)
    assert [square for square, _ in results] == [i * i for i in range(50)]
    assert os.getpid() not in {pid for _, pid in results}


def test_processes_match_threads_for_scans_and_caches(class_folders, tmp_path, monkeypatch):
    (class_folders / "000_red" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(200))
    source = zoo.create_dataset(str(class_folders)).train
    paths = [str(p) for p in sorted(class_folders.rglob("*.*"))]
    spec = CacheSpec(20, 20)
    results = {}
    for mode, threshold in (("threads", 10**9), ("processes", 4)):
        monkeypatch.setattr(parallel, "MIN_FOR_PROCESSES", threshold)
        scan = scan_images(paths, warn=False)
        exact = decode_once(source, CacheSpec.for_evaluation(Preprocessing(input_size=16, resize_size=18)))
        results[mode] = (scan.good, scan.bad, decode_once(source, spec).images,
                         np.asarray(decode_once_to_disk(source, spec, folder=tmp_path / mode).images), exact.images)
    threads, processes = results["threads"], results["processes"]
    assert processes[0] == threads[0] and len(threads[0]) == 30
    assert processes[1] == threads[1] and threads[1][0][0].endswith("broken.jpg")
    assert np.array_equal(processes[2], threads[2]) and threads[2].std() > 0
    assert np.array_equal(processes[3], threads[3])  # written by the workers into the shared file mapping
    assert np.array_equal(processes[4], threads[4])  # evaluation geometry: torch ops in the forked workers


def test_an_error_in_a_worker_reaches_the_caller(use_processes):
    def fails_at_seven(index):
        if index == 7:
            raise BadImageError("image 7 is broken")
        return index

    with pytest.raises(BadImageError, match="image 7"):
        parallel.map_indices(fails_at_seven, 20, workers=2)
