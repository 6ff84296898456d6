"""`zoo export`, `zoo eval` and `zoo predict` killed (SIGKILL) at random moments: what a user sees is always
the previous complete output or the new complete one, and the next run succeeds and cleans up."""

import csv
import json
import os
import random
import subprocess
import sys
import time

import pytest

import zoo
from tests.conftest import ROOT
from tests.test_promises import _check_export_folder

KILLS = 4


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults") / "shapes"
    zoo.finetune(model="example_tinynet", data="example_shapes", epochs=2, batch_size=32, output=str(folder),
                 quiet=True, workers=0)
    return folder


def _zoo(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "zoo", "-q", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _kill_at_random_moments(args, check, seed: int) -> None:
    started = time.perf_counter()
    whole = _zoo(*args)
    assert whole.wait(timeout=300) == 0, whole.stderr.read()[-2000:]
    duration = time.perf_counter() - started
    check()
    rng = random.Random(seed)
    for _ in range(KILLS):
        proc = _zoo(*args)
        time.sleep(rng.uniform(0.2, duration))
        proc.kill()
        proc.wait()
        check()  # the previous output, whole
    done = _zoo(*args)
    assert done.wait(timeout=300) == 0, done.stderr.read()[-2000:]
    check()


@pytest.mark.slow
def test_a_killed_export_leaves_an_export_whose_model_json_describes_its_files(run, tmp_path):
    out = tmp_path / "export"
    _kill_at_random_moments(["export", run, "--format", "onnx,torchscript", "-o", out],
                            lambda: _check_export_folder(out, leftovers_allowed=True) if out.exists() else None, seed=1)
    assert set(_check_export_folder(out)["files"]) == {"onnx", "torchscript"}


@pytest.mark.slow
def test_a_killed_eval_leaves_a_whole_report(run, tmp_path):
    out = tmp_path / "report"

    def check():
        if out.exists():
            assert json.loads((out / "metrics.json").read_text())["images"] == 72
            assert (out / "mistakes.html").read_text().rstrip().endswith(("</figure>", "</p>"))
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report.") and p.is_file()]

    _kill_at_random_moments(["eval", run, "-o", out], check, seed=2)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report.")]  # the last run cleaned up


@pytest.mark.slow
def test_a_killed_predict_leaves_a_whole_csv_or_none(run, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    from PIL import Image

    for i in range(60):
        Image.new("RGB", (64, 48), (i * 4, 100, 200 - i * 3)).save(folder / f"{i:02d}.png")
    out = tmp_path / "p.csv"

    def check():
        if out.exists():
            rows = list(csv.reader(out.open()))
            assert len(rows) == 61 and rows[0][0] == "image"

    _kill_at_random_moments(["predict", run, folder, "-o", out], check, seed=3)
