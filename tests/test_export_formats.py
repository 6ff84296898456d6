"""Export formats as registry entries: pt2, int8, embedded preprocessing, static batches, a third-party
format, metadata a consumer can follow, and a consumer that needs neither torch nor zoo."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import zoo
from zoo.cli import app
from zoo.errors import ExportError, ZooError
from tests.conftest import ROOT, shared_data
from tests.plugin_factory import make_plugin

pytestmark = pytest.mark.export
runner = CliRunner()


@pytest.fixture
def shapes_run(trained_shapes):
    return trained_shapes


def _val_images(folder, n=9):
    dataset = zoo.create_dataset("example_shapes")
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        dataset.eval.load(i).save(folder / f"{i}.png")
    return folder


def test_all_formats_pass_their_gates_and_carry_no_machine_paths(shapes_run, tmp_path):
    out = tmp_path / "all"
    result = zoo.export(shapes_run, format="all", output=out)
    assert {"onnx", "onnx-int8", "pt2", "torchscript"} <= set(result.files)
    parity = json.loads((out / "parity.json").read_text())
    for fmt in ("onnx", "pt2", "torchscript"):
        report = parity[fmt]
        assert report["passed"] and report["top1_agreement"] == 1.0
        assert report["max_abs_diff"] <= report["tolerance"]
        assert report["tolerance"] == pytest.approx(report["atol"] + report["rtol"] * report["max_abs_logit"])
        assert report["batch_sizes"] == [1, 8, 3] and report["reference"].startswith("eager fp32")
    int8 = parity["onnx-int8"]
    assert int8["gate"] == "top-1 agreement >= 0.99" and int8["top1_agreement"] >= 0.99 and int8["passed"]
    assert int8["calibration_images"] > 0
    text = (out / "model.json").read_text() + (out / "parity.json").read_text()
    assert str(shapes_run) not in text and str(tmp_path) not in text  # names relative to the run
    model_json = json.loads((out / "model.json").read_text())
    assert model_json["checkpoint"] == "shapes/best.safetensors"
    assert model_json["decoding"]["exif_orientation"].startswith("applied") and "257" in model_json["decoding"]["16_bit"]
    assert model_json["preprocessing"]["resize_rule"] == "shorter_side" and model_json["preprocessing"]["antialias"]
    import onnx

    props = {p.key: p.value for p in onnx.load(str(out / "model.onnx")).metadata_props}
    assert props["zoo.crop"] == "center" and json.loads(props["zoo.antialias"]) is True and "alpha" in props["zoo.decoding"]


def test_each_export_predicts_what_the_checkpoint_predicts(shapes_run, tmp_path):
    folder = _val_images(tmp_path / "imgs")
    result = zoo.export(shapes_run, format="onnx,pt2,torchscript,onnx-int8", output=tmp_path / "out", images=folder)
    reference = zoo.predict(shapes_run, [folder], top_k=3)
    for fmt, path in result.files.items():
        got = zoo.predict(path, [folder], top_k=3)
        assert [r["top"][0]["label"] for r in got] == [r["top"][0]["label"] for r in reference], fmt
        if fmt != "onnx-int8":
            assert max(abs(a["top"][0]["prob"] - b["top"][0]["prob"]) for a, b in zip(got, reference)) < 1e-4, fmt


def test_embedded_preprocessing_takes_decoded_images_of_any_size(shapes_run, tmp_path):
    from PIL import Image

    result = runner.invoke(app, ["export", str(shapes_run), "--format", "onnx,onnx-int8", "--embed-preprocessing",
                                 "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    parity = json.loads((tmp_path / "out" / "parity.json").read_text())
    assert parity["onnx"]["gate"].startswith("same top-1 and |probability diff| <= 0.001")
    assert parity["onnx"]["max_prob_diff"] <= 1e-3 and parity["onnx"]["top1_agreement"] == 1.0
    folder = tmp_path / "odd"
    folder.mkdir()
    dataset = zoo.create_dataset("example_shapes")
    for i, size in enumerate([(32, 32), (57, 41), (40, 90), (300, 200)]):  # any size: resize and crop inside
        dataset.eval.load(i).resize(size, Image.BICUBIC).save(folder / f"{i}.png")
    embedded = zoo.predict(tmp_path / "out" / "model-uint8.onnx", [folder])
    reference = zoo.predict(shapes_run, [folder])
    for a, b in zip(embedded, reference):
        assert a["top"][0]["label"] == b["top"][0]["label"]
        assert max(abs(x["prob"] - y["prob"]) for x, y in zip(a["top"], b["top"])) <= 1e-3


@pytest.mark.parametrize("batch", [None, 4])
def test_static_exports_work_with_any_number_of_images(shapes_run, tmp_path, batch):
    args = ["export", str(shapes_run), "--format", "onnx", "--static", "-o", str(tmp_path / "out")]
    result = runner.invoke(app, args + (["--batch-size", str(batch)] if batch else []))
    assert result.exit_code == 0, result.output
    parity = json.loads((tmp_path / "out" / "parity.json").read_text())["onnx"]
    assert parity["batch_sizes"] == ([1] if batch is None else [1, 4])
    import onnxruntime

    shape = onnxruntime.InferenceSession(str(tmp_path / "out" / "model.onnx")).get_inputs()[0].shape
    assert shape[0] == (batch or 1)
    folder = _val_images(tmp_path / "imgs", n=3)
    got = zoo.predict(tmp_path / "out" / "model.onnx", [folder])  # 3 images: chunks of the fixed size, padded
    assert [r["top"][0]["label"] for r in got] == [r["top"][0]["label"] for r in zoo.predict(shapes_run, [folder])]


def test_formats_are_listed_and_unknown_ones_named(shapes_run, tmp_path):
    result = runner.invoke(app, ["export", "--list-formats"])
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.output.splitlines()]
    assert {"onnx", "onnx-int8", "pt2", "torchscript"} <= set(names)
    help_text = runner.invoke(app, ["export", "--help"], terminal_width=200).output
    assert "onnx | onnx-int8 | pt2 | torchscript" in help_text
    with pytest.raises(ZooError, match="unknown export format 'onnx8'.*did you mean onnx"):
        zoo.export(shapes_run, format="onnx8", output=tmp_path / "x")


def test_the_openvino_format_needs_its_plugin(shapes_run, tmp_path):
    from zoo.exporter.formats import get_format
    from zoo.registry import core

    registry = core.Registry(discover_plugins=False)  # as on a machine without zoo-openvino
    from zoo.plugin import PluginContext
    from zoo.exporter.formats import register
    from zoo.registry.plugins import commit

    ctx = PluginContext("zoo")
    register(ctx)
    commit(registry, ctx)
    saved, core._REGISTRY = core._REGISTRY, registry
    try:
        with pytest.raises(ExportError, match=r"comes from a plugin that is not installed: pip install ./plugins/zoo-openvino"):
            get_format("openvino")
    finally:
        core._REGISTRY = saved


def test_openvino_plugin_exports_and_passes_the_gate(shapes_run, tmp_path):
    pytest.importorskip("openvino")
    pytest.importorskip("zoo_openvino")
    result = zoo.export(shapes_run, format="openvino", output=tmp_path / "ov")
    assert result.passed and (tmp_path / "ov" / "model.bin").is_file()
    folder = _val_images(tmp_path / "imgs", n=4)
    got = zoo.predict(tmp_path / "ov" / "model.xml", [folder])
    assert [r["top"][0]["label"] for r in got] == [r["top"][0]["label"] for r in zoo.predict(shapes_run, [folder])]


BROKEN_EXPORTER = """
def register(ctx):
    ctx.add_exporter("tflite", "zoo_broken_exporter_mod:Missing")
    raise RuntimeError("no converter on this machine")
"""


def test_a_broken_exporter_plugin_is_reported_and_breaks_nothing(shapes_run, tmp_path, fresh_registry, monkeypatch):
    site = tmp_path / "site"
    monkeypatch.syspath_prepend(str(site))
    make_plugin(site, "zoo-broken-exporter", BROKEN_EXPORTER, {"zoo.exporters": "tflite = MODULE:register"})
    records = {r.distribution: r for r in zoo.list_plugins()}
    assert "RuntimeError: no converter on this machine" in records["zoo-broken-exporter"].error
    assert zoo.export(shapes_run, format="onnx", output=tmp_path / "out").passed


def test_tolerance_scales_with_the_logits(tmp_path):
    from zoo.engine.checkpoint import save_weights
    from zoo.runs import CheckpointMeta

    torch.manual_seed(0)
    model = zoo.create_model("tv:mobilenet_v3_small", num_classes=4).eval()  # logits of ~0.005 at init
    meta = CheckpointMeta(model="tv:mobilenet_v3_small", num_classes=4, classes=list("abcd"),
                          preprocessing=zoo.model_info("tv:mobilenet_v3_small").preprocessing(64))
    save_weights(tmp_path / "best", model, meta)
    images = tmp_path / "imgs"
    images.mkdir()
    from PIL import Image

    for i in range(4):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (72, 72, 3), dtype=np.uint8)).save(images / f"{i}.png")
    result = zoo.export(checkpoint=tmp_path / "best.safetensors", format="onnx", output=tmp_path / "out", images=images)
    report = result.parity["onnx"]
    assert report["tolerance"] < 2e-5  # 1e-5 + 1e-4 * max|logit|: tight where the logits are tiny
    assert report["passed"]
    with pytest.raises(ExportError, match="diverged"):
        zoo.export(checkpoint=tmp_path / "best.safetensors", format="onnx", output=tmp_path / "out2", images=images,
                   atol=0, rtol=1e-12)


def test_broken_files_are_one_line_each(shapes_run, tmp_path):
    import shutil

    out = tmp_path / "out"
    zoo.export(shapes_run, format="onnx,torchscript", output=out)
    (tmp_path / "cut.pt").write_bytes((out / "model.pt").read_bytes()[:2000])
    (tmp_path / "cut.onnx").write_bytes((out / "model.onnx").read_bytes()[:500])
    image = _val_images(tmp_path / "imgs", n=1) / "0.png"
    for path, message in ((tmp_path / "cut.pt", "is not a readable TorchScript model"),
                          (tmp_path / "cut.onnx", "is not a readable ONNX model")):
        result = runner.invoke(app, ["predict", str(path), str(image)])
        assert result.exit_code == 1 and result.output.count("\n") == 1 and message in result.output
    run = tmp_path / "run"
    shutil.copytree(shapes_run, run)
    (run / "best.safetensors").unlink()
    result = runner.invoke(app, ["export", str(run), "-o", str(tmp_path / "e")])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert f"--checkpoint {run / 'last.safetensors'}" in result.output


def test_torchscript_says_pt2_is_recommended(shapes_run, tmp_path, caplog):
    with caplog.at_level("INFO", logger="zoo"):
        zoo.export(shapes_run, format="torchscript", output=tmp_path / "ts")
    assert any("torch.export (--format pt2)" in r.getMessage() for r in caplog.records)


@pytest.fixture(scope="module")
def photo_run(tmp_path_factory):
    shared_data("hymenoptera")
    run = tmp_path_factory.mktemp("photos") / "ants"
    zoo.finetune(model="example_tinynet", data="hymenoptera", epochs=3, lr=3e-3, batch_size=32, output=str(run),
                 quiet=True, workers=0)
    out = run.parent / "export"
    zoo.export(run, format="onnx", output=out)
    zoo.export(run, format="onnx", output=out, embed_preprocessing=True)
    return run, out


@pytest.mark.slow
@pytest.mark.parametrize("file", ["model.onnx", "model-uint8.onnx"])
def test_a_consumer_without_torch_reproduces_zoo_predict(photo_run, file):
    run, out = photo_run
    photos = sorted((shared_data("hymenoptera") / "val").rglob("*.jpg"))[::5][:32]
    expected = json.loads((shared_data("bad_inputs") / "expected.json").read_text())
    odd = [shared_data("bad_inputs") / name for name, rule in expected.items() if rule["expect"] == "load"]
    images = [str(p) for p in photos + odd]
    assert len(photos) >= 30 and len(odd) >= 15
    code = ("import runpy, sys\nsys.argv = sys.argv[1:]\nrunpy.run_path(sys.argv[0], run_name='__main__')\n"
            "assert 'torch' not in sys.modules, 'the consumer imported torch'\n")
    done = subprocess.run([sys.executable, "-c", code, str(ROOT / "examples" / "onnx_consumer.py"), str(out / file),
                           *images], capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    consumer = [json.loads(line) for line in done.stdout.splitlines()]
    reference = zoo.predict(run, images, top_k=5)
    assert len(consumer) == len(reference) == len(images)
    worst = 0.0
    for a, b in zip(consumer, reference):
        assert a["top"][0]["label"] == b["top"][0]["label"], a["image"]
        probs_a = {t["label"]: t["prob"] for t in a["top"]}
        worst = max(worst, *(abs(probs_a[t["label"]] - t["prob"]) for t in b["top"] if t["label"] in probs_a))
    assert worst <= 1e-3, worst
