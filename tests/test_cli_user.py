"""What a new user meets first: usage errors, help, --dry-run, zoo eval, predict to a file, listings."""

import csv
import json
import os
import subprocess
import sys

import pytest
from PIL import Image
from typer.testing import CliRunner

import zoo
from zoo.cli import app
from tests.conftest import ROOT, write_image

runner = CliRunner()
FAST = ["--workers", "0", "-q"]


@pytest.mark.parametrize("args,expected", [
    (["finetune", "resnet18", "--data", "digits", "--epoch", "3"], "No such option: --epoch (Possible options: --epochs"),
    (["lst"], "No such command 'lst'. Did you mean 'list'?"),
    (["export", "--format"], "Option '--format' requires an argument"),
    (["finetune", "resnet18", "--data", "digits", "--epochs", "three"], "Invalid value for '--epochs'"),
    (["predict", "latest"], "Missing argument 'IMAGES'"),
    (["eval", "latest", "--splt", "val"], "No such option: --splt"),
    (["data", "chek", "x"], "No such command 'chek'. Did you mean 'check'?"),
])
def test_usage_errors_are_clicks_message_and_exit_2(args, expected):
    result = subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and "unexpected" not in result.stderr


def test_version_and_completion():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output == f"zoo {zoo.__version__}\n"
    assert "--install-completion" in runner.invoke(app, ["--help"]).output


def test_finetune_help_has_panels_and_every_option_has_help_and_default():
    from zoo.engine.config import PANELS

    text = runner.invoke(app, ["finetune", "--help"], terminal_width=200).output
    lines = text.splitlines()
    assert [p + ":" for p in PANELS] == [line for line in lines if line.rstrip(":") in PANELS]
    import typer

    command = typer.main.get_command(app).commands["finetune"]
    options = [p for p in command.params if p.param_type_name == "option" and not p.hidden]
    assert len(options) >= 40
    assert not [p.name for p in options if not p.help], "every option has a help line"
    no_default = [p.name for p in options if not (p.show_default or p.is_flag or p.name in ("config", "resume", "data"))]
    assert not no_default, no_default
    assert "--epochs <int>" in text and "[default: 10]" in text and "[default: adamw]" in text
    assert "[default: (0.1 x batch/256 for sgd, 1e-3 for adam(w))]" in text


def test_finetune_without_data_names_the_dataset_listing(tmp_path):
    result = runner.invoke(app, ["finetune", "example_tinynet", "-o", str(tmp_path / "run")])
    assert result.exit_code == 1 and "zoo list --datasets" in result.output
    assert not (tmp_path / "run").exists()


def test_dry_run_resolves_everything_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["finetune", "example_tinynet", "--data", "example_shapes", "--dry-run",
                                 "--freeze", "backbone", "--batch-size", "32"])
    assert result.exit_code == 0, result.output
    text = result.output
    for expected in ("model          example_tinynet", "3 classes, train 288, val 72", "train: 97 92 99; val: 23 28 21",
                     "cifar, device pipeline", "trainable, ", "adamw, lr 0.001 (body 0.0001)",
                     "10 epochs x 9 steps", "auto           augment cifar (32 px images), label smoothing 0.1", "torch.compile  off: on a CPU it does not pay back its warm-up", "runs/example_tinynet-example_shapes-",
                     "dry run: nothing was written"):
        assert expected in text, expected
    assert "randomly initialised" in text  # the frozen random backbone warning
    assert not (tmp_path / "runs").exists()
    plan = zoo.finetune(model="example_tinynet", data="example_shapes", dry_run=True, freeze="backbone")
    assert plan.frozen_parameters > 0 and plan.trainable_parameters == 195  # 64 x 3 weights + 3 biases
    assert not (tmp_path / "runs").exists()


def test_resume_of_a_finished_run_says_how_to_extend(tmp_path):
    run = tmp_path / "run"
    zoo.finetune(model="example_tinynet", data="example_shapes", epochs=1, output=str(run), quiet=True, workers=0)
    before = (run / "config.json").read_bytes()
    result = runner.invoke(app, ["finetune", "--resume", str(run), *FAST])
    assert result.exit_code == 1
    assert result.output.strip() == (f"error: run {run} finished at epoch 1 of 1; pass --epochs N (more than 1) to "
                                     "train it further")
    assert (run / "config.json").read_bytes() == before


def test_listing_with_a_prefix_other_sources_and_local_datasets(tmp_path, monkeypatch):
    result = runner.invoke(app, ["list", "tv:mobilenet*"])
    assert result.exit_code == 0 and [line.split()[0] for line in result.output.splitlines()] == [
        "tv:mobilenet_v2", "tv:mobilenet_v3_large", "tv:mobilenet_v3_small"]
    assert "torchvision mobilenet_v2 (3.5M params)" in result.output  # described, as zoo's own models are
    result = runner.invoke(app, ["list", "vit*"])
    assert "no model matches 'vit*' in source zoo" in result.output and "in timm: (zoo list 'timm:vit*')" in result.output
    (tmp_path / "flowers").mkdir()
    monkeypatch.setenv("ZOO_DATA_ROOT", str(tmp_path))
    lines = {line.split()[0]: line for line in runner.invoke(app, ["list", "--datasets"]).output.splitlines()}
    assert f"here: {tmp_path / 'flowers'}" in lines["flowers"]
    assert "not here" in lines["food20"] and "embedded" in lines["digits"]


def test_python_finetune_prints_epoch_lines_unless_quiet(tmp_path):
    script = ("import sys, zoo\nzoo.finetune(model='example_tinynet', data='example_shapes', epochs=2, workers=0, "
              "output=sys.argv[1], quiet=sys.argv[2] == 'quiet')\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    loud = subprocess.run([sys.executable, "-c", script, str(tmp_path / "a"), "loud"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert loud.returncode == 0, loud.stderr
    epoch_lines = [line for line in loud.stderr.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epoch_lines] == ["1/2", "2/2"]
    assert "\n\n" not in loud.stderr and "nan" not in loud.stderr  # no bar redraws or blank lines off a terminal
    quiet = subprocess.run([sys.executable, "-c", script, str(tmp_path / "b"), "quiet"], capture_output=True, text=True,
                           env=env, timeout=300)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_plots_show_a_single_epoch_and_counts_in_the_confusion_matrix():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from zoo.engine.metrics import confusion_figure, curves_figure

    row = {"epoch": 1, "train_loss": 1.0, "val_loss": 1.1, "train_top1": 0.5, "val_top1": 0.4, "val_top5": 0.9,
           "lr": 1e-3}
    fig = curves_figure(plt, [row])
    lines = [line for ax in fig.axes for line in ax.get_lines()]
    assert len(lines) == 6 and all(line.get_marker() == "o" for line in lines)  # one point each is visible
    assert any(ax.get_title().startswith("learning rate") for ax in fig.axes)
    classes = [f"class_{i}" for i in range(22)]
    matrix = [[(i * 7 + j) % 5 for j in range(22)] for i in range(22)]
    fig = confusion_figure(plt, classes, matrix, "cm")
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {"1", "2", "3", "4"} <= texts and len(fig.axes) == 2  # counts in the cells, and a colour bar
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == classes


def test_dataset_repr_is_one_line():
    text = repr(zoo.create_dataset("digits"))
    assert text == "ImageDataset('digits', in-memory, 10 classes, train 1438, val 359)"


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval")
    run = folder / "run"
    zoo.finetune(model="example_tinynet", data="example_shapes", epochs=3, lr=3e-3, batch_size=32, output=str(run),
                 quiet=True, workers=0)
    zoo.export(run, format="onnx", output=folder / "export")
    return run, folder / "export" / "model.onnx"


def test_eval_scores_the_export_exactly_as_the_checkpoint(shapes_run, tmp_path):
    run, onnx_file = shapes_run
    result = runner.invoke(app, ["eval", str(run), "-o", str(tmp_path / "ckpt"), "-q"])
    assert result.exit_code == 0, result.output
    from_onnx = zoo.evaluate(onnx_file, output=tmp_path / "onnx", progress=False)
    from_ckpt = json.loads((tmp_path / "ckpt" / "metrics.json").read_text())
    assert from_onnx.images == from_ckpt["images"] == 72  # the whole validation split, not a sample
    assert from_onnx.top1 == from_ckpt["top1"] and from_onnx.confusion_matrix == from_ckpt["confusion_matrix"]
    assert sum(map(sum, from_onnx.confusion_matrix)) == 72
    assert {c["class"] for c in from_onnx.per_class} == {"circle", "square", "triangle"}
    assert all(0 <= c["f1"] <= 1 for c in from_onnx.per_class)
    page = (tmp_path / "onnx" / "mistakes.html").read_text()
    assert page.count("<img src=\"data:image/jpeg;base64,") == len(from_onnx.mistakes)
    confidences = [m["confidence"] for m in from_onnx.mistakes]
    assert confidences == sorted(confidences, reverse=True)
    assert (tmp_path / "onnx" / "confusion_matrix.png").stat().st_size > 1000
    result = runner.invoke(app, ["eval", str(run), "--split", "test", "-q"])
    assert result.exit_code == 1 and "has no split 'test'; it has train, val" in result.output


def _images(folder, n=4):
    dataset = zoo.create_dataset("example_shapes")
    folder.mkdir(parents=True, exist_ok=True)
    return [dataset.eval.load(i).save(folder / f"{i}.png") or folder / f"{i}.png" for i in range(n)]


def test_predict_writes_csv_and_jsonl_in_input_order(shapes_run, tmp_path, monkeypatch):
    run, onnx_file = shapes_run
    files = _images(tmp_path / "imgs")
    (tmp_path / "imgs" / "broken.png").write_bytes(b"not an image")
    order = [str(files[2]), str(tmp_path / "imgs" / "broken.png"), str(files[0])]
    result = runner.invoke(app, ["predict", str(onnx_file), *order, "-o", str(tmp_path / "p.csv"), "-k", "2",
                                 "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert [r["image"] for r in rows] == order
    assert rows[1]["error"].startswith("not an image") and rows[1]["label_1"] == ""
    assert rows[0]["label_1"] in ("circle", "square", "triangle") and 0 < float(rows[0]["prob_1"]) <= 1
    result = runner.invoke(app, ["predict", str(onnx_file), str(tmp_path / "imgs" / "*.png"), "-o",
                                 str(tmp_path / "p.jsonl")])
    lines = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [line["image"] for line in lines] == sorted(str(p) for p in (tmp_path / "imgs").glob("*.png"))
    # a run folder's name and `latest` work as the model
    monkeypatch.chdir(run.parent)
    (run.parent / "runs").mkdir(exist_ok=True)
    os.symlink(run, run.parent / "runs" / "latest") if not (run.parent / "runs" / "latest").exists() else None
    from_latest = zoo.predict("latest", [files[2], files[0]], top_k=1)
    assert [r["top"][0]["label"] for r in from_latest] == [rows[0]["label_1"], rows[2]["label_1"]]


def test_predict_exits_1_when_every_image_is_skipped(shapes_run, tmp_path):
    _, onnx_file = shapes_run
    (tmp_path / "a.jpg").write_bytes(b"")
    (tmp_path / "b.png").write_text("<html></html>")
    result = runner.invoke(app, ["predict", str(onnx_file), str(tmp_path / "a.jpg"), str(tmp_path / "b.png")])
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == "error: none of the 2 images could be read (reasons above); pass image files"
    result = runner.invoke(app, ["predict", str(onnx_file), str(tmp_path / "*.webp")])
    assert result.exit_code == 1 and "no file matches" in result.output


def test_tensorboard_scalars_per_epoch(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    zoo.finetune(model="example_tinynet", data="example_shapes", epochs=2, output=str(tmp_path / "run"), quiet=True,
                 workers=0, tensorboard=True)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert {"loss/train", "loss/val", "top1/val", "lr", "images_per_s"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("top1/val")] == [1, 2]
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    result = runner.invoke(app, ["finetune", "example_tinynet", "--data", "example_shapes", "--tensorboard", "-o",
                                 str(tmp_path / "run2"), *FAST])
    assert result.exit_code == 1 and "pip install 'zoo[tensorboard]'" in result.output
    assert not (tmp_path / "run2").exists()


def test_jsonl_pair_and_list_files_keep_their_validation_split(tmp_path):
    def photo(name, color):
        return write_image(tmp_path / "imgs" / name, color)

    for split, count in (("train", 6), ("valid", 2)):
        lines = [json.dumps({"path": str(photo(f"{split}{c}{i}.png", (c * 90, 40, 40)).relative_to(tmp_path)),
                             "label": f"class{c}"}) for c in range(3) for i in range(count)]
        (tmp_path / f"{split}.jsonl").write_text("\n".join(lines))
    dataset = zoo.create_dataset(str(tmp_path))
    assert dataset.layout == "jsonl" and dataset.counts() == {"train": [6, 6, 6], "valid": [2, 2, 2]}
    assert dataset.eval_split_name == "valid"
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train.txt").write_text("\n".join(f"../imgs/train{c}{i}.png {c}" for c in range(3) for i in range(6)))
    (lists / "val.txt").write_text("\n".join(f"../imgs/valid{c}{i}.png {c}" for c in range(3) for i in range(2)))
    assert zoo.create_dataset(str(lists)).counts() == {"train": [6, 6, 6], "val": [2, 2, 2]}
    Image.new("RGB", (4, 4)).save(tmp_path / "extra.png")


def test_eval_of_an_export_whose_data_is_not_here_names_it_and_takes_data(class_folders, tmp_path):
    """An export made elsewhere: its dataset (a folder on the other machine) is neither a name nor a folder
    here; `zoo eval EXPORT` says so in one line and `--data` points it at a copy."""
    import shutil

    run = tmp_path / "run"
    zoo.finetune(model="example_tinynet", data=str(class_folders), epochs=2, batch_size=8, output=str(run),
                 quiet=True, workers=0)
    zoo.export(run, format="onnx", output=tmp_path / "export")
    shutil.rmtree(run)  # only the export travels
    copy = tmp_path / "copy-of-colors"
    class_folders.rename(copy)
    result = runner.invoke(app, ["eval", str(tmp_path / "export" / "model.onnx"), "-q"])
    assert result.exit_code == 1
    assert "which is no dataset name or folder here; pass --data" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = runner.invoke(app, ["eval", str(tmp_path / "export" / "model.onnx"), "--data", str(copy),
                                 "-o", str(tmp_path / "report"), "-q"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["images"] > 0 and 0 <= metrics["top1"] <= 1
