"""A user's first hour: a time estimate before training, smoke-sized runs, progress off a terminal,
a plain word when a large model would learn from random init."""

import json
import os
import subprocess
import sys

from typer.testing import CliRunner

import zoo
from zoo.cli import app
from tests.conftest import ROOT

runner = CliRunner()


def test_the_dry_run_estimates_the_epoch_within_2x_of_the_real_one(tmp_path):
    options = dict(model="resnet18", data="example_shapes", image_size=64, batch_size=32, workers=0,
                   output=str(tmp_path / "run"))
    plan = zoo.plan(**options, epochs=3)
    assert "timed on" in plan.time_estimate and "data loading not included" in plan.time_estimate
    result = zoo.finetune(**options, epochs=3, quiet=True)
    epochs = [r.elapsed_s for r in result.history]
    measured = min(b - a for a, b in zip(epochs, epochs[1:]))  # a steady epoch: train, evaluate, checkpoint
    assert 0.5 <= plan.estimated_epoch_s / measured <= 2.0, (plan.estimated_epoch_s, measured)


def test_limit_train_and_val_draw_stratified_subsets(tmp_path):
    plan = zoo.plan(model="example_tinynet", data="example_shapes", limit_train=30, limit_val=9,
                    output=str(tmp_path / "run"))
    assert sum(plan.counts["train"]) == 30 and sum(plan.counts["val"]) == 9
    assert all(n >= 9 for n in plan.counts["train"]) and all(n == 3 for n in plan.counts["val"])
    result = zoo.finetune(model="example_tinynet", data="example_shapes", limit_train=30, limit_val=9, epochs=1,
                          workers=0, quiet=True, output=str(tmp_path / "run"))
    assert json.loads((tmp_path / "run" / "final_metrics.json").read_text())["confusion_matrix"] and result.epochs_run
    assert sum(map(sum, json.loads((tmp_path / "run" / "final_metrics.json").read_text())["confusion_matrix"])) == 9


def test_progress_lines_appear_off_a_terminal(tmp_path):
    code = ("import zoo; zoo.finetune(model='resnet18', data='example_shapes', image_size=64, epochs=1, batch_size=8, "
            "workers=0, output=r'%s', log_every=1)" % (tmp_path / "run"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("epoch 1/1  step ")]
    assert lines and "img/s" in lines[0] and "ETA" in lines[0], done.stderr[-2000:]
    assert "\x1b" not in done.stderr and "\r" not in done.stderr  # plain lines, no bar redraws


def test_a_large_model_from_random_init_is_said_plainly(tmp_path):
    result = runner.invoke(app, ["finetune", "resnet152", "--data", "example_shapes", "--image-size", "32",
                                 "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "resnet152 has 58 M parameters and trains from random init" in result.output
    assert "--weights DEFAULT --freeze backbone" in result.output and "food20_resnet152_frozen.sh" in result.output


LISTING = """
import sys
from typer.testing import CliRunner
from zoo.cli import app
result = CliRunner().invoke(app, sys.argv[1:])
print(result.output)
print("IMPORTED" if "torchvision" in sys.modules or "torch" in sys.modules else "NOT IMPORTED")
"""


def test_namespace_listing_and_info_are_remembered_and_described(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ZOO_CACHE": str(tmp_path / "cache")}

    def zoo_in_fresh_process(*args):
        done = subprocess.run([sys.executable, "-c", LISTING, *args], capture_output=True, text=True, env=env,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    first = zoo_in_fresh_process("list", "tv:resnet*")
    assert "tv:resnet50" in first and "torchvision resnet50 (25.6M params)" in first
    second = zoo_in_fresh_process("list", "tv:resnet*")
    assert second.splitlines()[:-1] == first.splitlines()[:-1] and second.strip().endswith("NOT IMPORTED")
    zoo_in_fresh_process("info", "tv:resnet18")
    info = zoo_in_fresh_process("info", "tv:resnet18")
    assert "11,689,512" in info and info.strip().endswith("NOT IMPORTED")  # no model built the second time


def test_the_offline_weights_error_comes_before_any_data_is_read(tmp_path):
    result = runner.invoke(app, ["finetune", "resnet18", "--data", str(tmp_path / "not-read-yet"), "--weights",
                                 "DEFAULT", "--dry-run"])
    assert result.exit_code == 1 and result.output.startswith("error: no published weights for resnet18")
    assert "put it at" in result.output and result.output.count("\n") == 1


def test_the_cache_budget_is_an_option_and_printed_in_binary_units(class_folders, tmp_path, monkeypatch):
    from zoo.data.decoded_cache import format_size, parse_size

    assert parse_size("4GiB") == 4 << 30 and parse_size("512MB") == 512_000_000 and format_size(4 << 30) == "4.0 GiB"
    common = dict(model="example_tinynet", data=str(class_folders), output=str(tmp_path / "r"))
    assert zoo.plan(**common).pixels == "memory" and zoo.plan(**common).cache_budget == "4.0 GiB"
    assert zoo.plan(**common, cache_budget="1KB").pixels == "files"
    monkeypatch.setenv("ZOO_CACHE_BUDGET", "2KiB")
    plan = zoo.plan(**common)
    assert plan.pixels == "files" and plan.cache_budget == "2.0 KiB"
    result = runner.invoke(app, ["finetune", "example_tinynet", "--data", str(class_folders), "--cache-budget", "lots",
                                 "--dry-run"])
    assert result.exit_code == 1 and "--cache-budget 'lots' is not a size" in result.output
