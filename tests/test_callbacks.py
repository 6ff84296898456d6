"""The engine opens up: callbacks from Python and from plugins, typed epoch results, one plan."""

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import zoo
from zoo.cli import app
from zoo.engine.callbacks import EpochResult, parse_spec
from zoo.errors import TrainingError
from tests.conftest import ROOT
from tests.plugin_factory import make_plugin

runner = CliRunner()
SHAPES = dict(model="example_tinynet", data="example_shapes", batch_size=32, quiet=True, workers=0,
              max_steps_per_epoch=3)


class Recorder(zoo.Callback):
    def __init__(self):
        self.calls = []

    def on_fit_start(self, plan):
        self.calls.append(("start", plan.model, plan.output))

    def on_epoch_end(self, result):
        self.calls.append(("epoch", result.epoch, result.val_top1, result.improved))

    def on_checkpoint(self, path, meta):
        self.calls.append(("checkpoint", path.name, meta.epoch, path.is_file()))

    def on_fit_end(self, result):
        self.calls.append(("end", result.epochs_run))


def test_a_callback_sees_every_hook_with_typed_results(tmp_path):
    recorder = Recorder()
    result = zoo.finetune(**SHAPES, epochs=2, output=str(tmp_path / "run"), callbacks=[recorder])
    kinds = [c[0] for c in recorder.calls]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("epoch") == 2
    assert recorder.calls[0][2] == str(tmp_path / "run")
    checkpoints = [c for c in recorder.calls if c[0] == "checkpoint"]
    assert ("checkpoint", "last.safetensors", 2, True) in checkpoints and all(c[3] for c in checkpoints)
    assert all(isinstance(r, EpochResult) for r in result.history)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows == [r.metrics() for r in result.history]  # the files and the callbacks read the same result
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header == EpochResult.metric_names()


class Broken(zoo.Callback):
    def __init__(self):
        self.epochs = 0

    def on_epoch_end(self, result):
        self.epochs += 1
        raise ValueError("tracker down")


def test_a_failing_callback_is_switched_off_and_nothing_is_lost(tmp_path, caplog):
    broken = Broken()
    with caplog.at_level("WARNING", logger="zoo"):
        result = zoo.finetune(**SHAPES, epochs=3, output=str(tmp_path / "run"), callbacks=[broken])
    assert broken.epochs == 1 and result.epochs_run == 3
    warnings = [r.getMessage() for r in caplog.records if "callback Broken failed" in r.getMessage()]
    assert len(warnings) == 1 and "ValueError: tracker down" in warnings[0] and "switched off" in warnings[0]
    assert json.loads((tmp_path / "run" / "last.json").read_text())["epoch"] == 3


class StopAtTwo(zoo.Callback):
    def on_epoch_end(self, result):
        if result.epoch == 2:
            raise zoo.StopTraining("enough")


def test_a_callback_may_ask_to_stop(tmp_path, caplog):
    with caplog.at_level("INFO", logger="zoo"):
        result = zoo.finetune(**{**SHAPES, "quiet": False}, epochs=5, output=str(tmp_path / "run"),
                              callbacks=[StopAtTwo()])
    assert result.epochs_run == 2
    assert any("stopping after epoch 2: StopAtTwo: enough" in r.getMessage() for r in caplog.records)


def test_early_stopping_is_a_callback_that_survives_resume(tmp_path):
    result = zoo.finetune(**SHAPES, epochs=6, lr=1e-6, patience=1, output=str(tmp_path / "run"))
    assert result.epochs_run < 6 and result.epochs_run - result.best_epoch == 1


def test_callback_specs_parse_with_typed_values():
    assert parse_spec("mlflow") == ("mlflow", {})
    assert parse_spec("mlflow:tracking_uri=http://127.0.0.1:5000,every=2,on=true") == (
        "mlflow", {"tracking_uri": "http://127.0.0.1:5000", "every": 2, "on": True})
    with pytest.raises(TrainingError, match="options are key=value"):
        parse_spec("mlflow:oops")


PLUGIN = """
import json, os

class EpochLog:
    def __init__(self, path, tag="x"):
        self.path, self.tag = path, tag

    def on_epoch_end(self, result):
        with open(self.path, "a") as f:
            f.write(json.dumps({"tag": self.tag, **result.metrics()}) + "\\n")

def register(ctx):
    ctx.add_callback("epochlog", "MODULE:EpochLog")
"""


def test_a_third_party_callback_plugin_receives_every_epoch(tmp_path, monkeypatch, fresh_registry):
    site = tmp_path / "site"
    make_plugin(site, "zoo-epochlog", PLUGIN.replace("MODULE", "zoo_epochlog_mod"),
                {"zoo.callbacks": "epochlog = MODULE:register"})
    monkeypatch.syspath_prepend(str(site))
    log = tmp_path / "epochs.jsonl"
    result = runner.invoke(app, ["finetune", "example_tinynet", "--data", "example_shapes", "--epochs", "3",
                                 "--max-steps-per-epoch", "2", "--workers", "0", "-o", str(tmp_path / "run"),
                                 "--callback", f"epochlog:path={log},tag=mine"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3] and {r["tag"] for r in rows} == {"mine"}
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["callbacks"] == [f"epochlog:path={log},tag=mine"]  # a resume gets it back
    runner.invoke(app, ["finetune", "--resume", str(tmp_path / "run"), "--epochs", "4"])
    assert [json.loads(line)["epoch"] for line in log.read_text().splitlines()] == [1, 2, 3, 4]
    listed = runner.invoke(app, ["plugins"])
    assert "callbacks: epochlog" in listed.output


def test_an_unknown_callback_is_one_line_before_training(tmp_path):
    result = runner.invoke(app, ["finetune", "example_tinynet", "--data", "example_shapes", "--callback", "mlfow",
                                 "-o", str(tmp_path / "run")])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "training callback" in result.output
    assert not (tmp_path / "run").exists()


# -- one plan ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("options", [
    [],
    ["--optimizer", "sgd", "--batch-size", "16", "--augment", "light", "--epochs", "4"],
    ["--freeze", "backbone", "--augment", "none", "--warmup-steps", "3", "--label-smoothing", "0"],
    ["--scheduler", "onecycle", "--lr", "0.01", "--accumulate-steps", "2", "--precision", "fp32"],
])
def test_the_dry_run_plan_is_what_the_run_executes(tmp_path, options):
    common = ["example_tinynet", "--data", "example_shapes", "--epochs", "2", "--workers", "0",
              "--max-steps-per-epoch", "2", "-o", str(tmp_path / "run")]
    planned = runner.invoke(app, ["finetune", *common, *options, "--dry-run", "--json"])
    assert planned.exit_code == 0, planned.output
    plan = json.loads(planned.stdout)
    assert not (tmp_path / "run").exists()
    trained = runner.invoke(app, ["-q", "finetune", *common, *options])
    assert trained.exit_code == 0, trained.output
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == plan["config"]
    assert zoo.plan(**{**plan["config"], "output": str(tmp_path / "other")}).config["batch_size"] == \
        plan["config"]["batch_size"]


def test_json_without_dry_run_is_a_usage_error():
    result = runner.invoke(app, ["finetune", "example_tinynet", "--data", "example_shapes", "--json"])
    assert result.exit_code == 2 and "--dry-run" in result.output


# -- DDP reporting -----------------------------------------------------------------------------------------------
DDP = """
import sys, zoo
zoo.finetune(model="example_tinynet", data="example_shapes", epochs=2, batch_size=16, workers=0,
             output=sys.argv[1], max_steps_per_epoch=3)
"""


@pytest.mark.slow
def test_ddp_reports_once_per_epoch_with_global_images_and_says_when_the_world_changes(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", "29533", str(script), str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("epoch 1/2 ") == 1 and done.stderr.count("epoch 2/2 ") == 1, done.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and rows[-1]["images"] == 2 * 3 * 16  # both processes' images
    resumed = subprocess.run([sys.executable, "-c", "import sys, zoo; zoo.finetune(resume=sys.argv[1], epochs=3, "
                              "workers=0)", str(tmp_path / "run")], capture_output=True, text=True, timeout=300,
                             env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming with 1 processes where the run had 2: the global batch is 16 images (was 32)" in resumed.stderr
