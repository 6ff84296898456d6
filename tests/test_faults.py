"""A run killed (SIGKILL) at many moments, resumed each time, ends bitwise equal to one that never stopped.

Kills land at random times (start-up, mid-epoch, epoch ends) and, every other time, the moment a
checkpoint or resume state is being written. After every kill each visible file of the run must be
complete, and the next start must succeed (resume, or restart in place when no epoch finished).
"""

import csv
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from tests.conftest import ROOT

EPOCHS = 8
KILLS = 20
SCRIPT = f"""
import sys, zoo
from zoo.runs import RunFolder
run = sys.argv[1]
if RunFolder(run).has_checkpoint():
    zoo.finetune(resume=run, quiet=True, workers=0)
else:  # never got a checkpoint: start again in place (nothing to lose, no --overwrite needed)
    zoo.finetune(model="example_tinynet", data="digits", epochs={EPOCHS}, batch_size=32, output=run, quiet=True,
                 workers=0)
"""


def _start(run: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(run)], env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _writing(run: Path) -> bool:
    """A checkpoint or resume state is half-written right now (its temporary file or folder exists)."""
    try:
        return any(n.startswith((".last.", ".best.", ".resume-")) and n != ".resume-old" for n in os.listdir(run))
    except FileNotFoundError:
        return False


def _check_complete(run: Path) -> None:
    """Every file a user (or zoo) can see is whole."""
    if not run.exists():
        return
    for path in run.rglob("*"):
        if any(part.startswith(".") for part in path.relative_to(run).parts) or not path.is_file():
            continue  # temporary files and staging folders are zoo's, and hidden
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".jsonl":
            [json.loads(line) for line in path.read_text().splitlines()]
        elif path.suffix == ".safetensors":
            load_file(str(path))
        elif path.suffix == ".csv":
            list(csv.reader(path.open()))
        elif path.suffix == ".pt":
            torch.load(path, weights_only=True)
        elif path.suffix == ".png":
            Image.open(path).verify()


@pytest.mark.slow
def test_killed_at_many_moments_resumes_to_the_same_weights(tmp_path):
    straight = tmp_path / "straight"
    started = time.perf_counter()
    done = _start(straight)
    assert done.wait(timeout=600) == 0, done.stderr.read()
    whole_run = time.perf_counter() - started

    rng = random.Random(0)
    run, kills, starts, at_write = tmp_path / "killed", 0, 0, 0
    while True:
        proc = _start(run)
        starts += 1
        if kills < KILLS:
            watch_writes = kills % 2 == 1  # wait for a write (the whole run long), else a random moment
            deadline = time.perf_counter() + (whole_run if watch_writes else rng.uniform(1.0, whole_run / 2))
            while time.perf_counter() < deadline and proc.poll() is None:
                if watch_writes and _writing(run):
                    at_write += 1
                    break
                time.sleep(0.001 if watch_writes else 0.01)
            if proc.poll() is None:
                proc.kill()
                kills += 1
            proc.wait()
            assert proc.returncode in (0, -9), proc.stderr.read()[-2000:]
            _check_complete(run)
            if proc.returncode == 0 and kills < KILLS:
                pytest.fail(f"the run finished after only {kills} kills; make it longer")
            continue
        assert proc.wait(timeout=600) == 0, proc.stderr.read()[-2000:]
        break
    assert kills >= KILLS and at_write >= 3, (kills, at_write)
    finished = json.loads((run / "last.json").read_text())
    assert finished["epoch"] == EPOCHS
    a, b = load_file(str(straight / "last.safetensors")), load_file(str(run / "last.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, EPOCHS + 1))
    assert not [p for p in run.parent.iterdir() if p.name.startswith(".killed.")]  # staging and locks gone
    print(f"\n{kills} kills ({at_write} during a checkpoint write), {starts} starts, same weights as the straight run")
