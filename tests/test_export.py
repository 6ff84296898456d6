"""Exports prove themselves: parity against eager PyTorch, metadata inside, predict agrees."""

import json

import onnx
import pytest
import torch
from typer.testing import CliRunner

import zoo
from zoo.cli import app
from zoo.errors import ExportError

pytestmark = pytest.mark.export


@pytest.fixture
def trained_run(trained_shapes):
    return trained_shapes


def test_export_all_passes_parity_and_carries_metadata(trained_run, tmp_path):
    result = zoo.export(trained_run, format="all", output=tmp_path / "out")
    assert result.passed
    parity = json.loads((tmp_path / "out" / "parity.json").read_text())
    for fmt in ("onnx", "torchscript"):
        report = parity[fmt]
        assert report["passed"] and report["max_abs_diff"] <= 1e-4 and report["top1_agreement"] == 1.0
        assert report["images"] == 72 and report["batch_sizes"] == [1, 8, 3]  # the whole val split
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "out" / "model.onnx")).metadata_props}
    assert json.loads(props["zoo.classes"]) == ["circle", "square", "triangle"]
    assert json.loads(props["zoo.mean"]) == [0.5, 0.5, 0.5] and props["zoo.input_size"] == "32"
    sidecar = json.loads((tmp_path / "out" / "model.json").read_text())
    assert len(sidecar["files"]["onnx"]["sha256"]) == 64 and sidecar["files"]["onnx"]["parity_passed"] is True


def test_predict_agrees_between_checkpoint_and_onnx(trained_run, tmp_path):
    dataset = zoo.create_dataset("example_shapes")
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(6):
        dataset.eval.load(i).save(folder / f"{i}.png")
    exported = zoo.export(trained_run, format="onnx", output=tmp_path / "out", images=folder)
    assert exported.parity["onnx"]["images"] == 6
    assert exported.parity["onnx"]["batch_sizes"] == [1, 6, 3]  # what ran: 6 images make no batch of 8
    from_ckpt = zoo.predict(trained_run, [folder], top_k=2)
    from_onnx = zoo.predict(tmp_path / "out" / "model.onnx", [folder], top_k=2)
    assert [r["top"][0]["label"] for r in from_ckpt] == [r["top"][0]["label"] for r in from_onnx]
    truth = [dataset.classes[int(dataset.eval.labels[i])] for i in range(6)]
    assert sum(a == b for a, b in zip([r["top"][0]["label"] for r in from_onnx], truth)) >= 5
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "out" / "model.onnx"), str(folder / "0.png"), "--json", "-k", "3"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload[0]["image"].endswith("0.png") and len(payload[0]["top"]) == 3
    assert abs(sum(t["prob"] for t in payload[0]["top"]) - 1.0) < 1e-3


def test_parity_failure_exits_1_and_keeps_files(trained_run, tmp_path):
    result = CliRunner().invoke(app, ["export", str(trained_run), "--format", "onnx", "-o", str(tmp_path / "o"),
                                      "--atol", "1e-12", "--rtol", "0"])
    assert result.exit_code == 1
    assert "error: onnx export diverged from PyTorch" in result.output
    assert (tmp_path / "o" / "model.onnx").is_file()
    assert json.loads((tmp_path / "o" / "model.json").read_text())["files"]["onnx"]["parity_passed"] is False


def test_export_errors_are_one_line(trained_run, tmp_path):
    from safetensors.torch import save_file

    bare = tmp_path / "bare.safetensors"
    save_file(zoo.create_model("example_tinynet").state_dict(), str(bare))
    with pytest.raises(ExportError, match="has no metadata"):
        zoo.export(checkpoint=bare, output=tmp_path / "x")
    with pytest.raises(ExportError, match="unknown export format 'tflite'"):
        zoo.export(trained_run, format="tflite")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(app, ["export", str(trained_run), "-o", str(blocker / "sub")])
    assert result.exit_code == 1 and "is not writable" in result.output


def test_predict_errors_are_one_line(trained_run, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["predict", str(tmp_path / "nothing.onnx"), str(tmp_path)])
    assert result.exit_code == 1
    assert result.output == (f"error: model file {tmp_path / 'nothing.onnx'} does not exist; pass a run folder (or a run name, or latest), a "
                             ".safetensors checkpoint, a .onnx or a TorchScript .pt that `zoo export` wrote\n")
    result = runner.invoke(app, ["predict", str(trained_run), str(tmp_path / "missing.jpg")])
    assert result.exit_code == 1 and result.output.strip().endswith(f"image path {tmp_path / 'missing.jpg'} does not exist")


def _fake_run(tmp_path, name, size):
    """A checkpoint with metadata as `zoo finetune` writes it, from random init."""
    from zoo.engine.checkpoint import save_weights
    from zoo.runs import CheckpointMeta

    info = zoo.model_info(name)
    torch.manual_seed(0)
    model = zoo.create_model(name, num_classes=4).eval()
    meta = CheckpointMeta(model=name, num_classes=4, classes=list("abcd"), preprocessing=info.preprocessing(size))
    save_weights(tmp_path / "best", model, meta)
    return tmp_path / "best.safetensors"


@pytest.mark.slow
@pytest.mark.parametrize("name,size", [
    ("resnet18", 64), ("resnet50", 64), ("resnet18_cifar", 32), ("tv:mobilenet_v3_small", 64),
    ("tv:efficientnet_b0", 64), ("tv:regnet_y_400mf", 64), ("tv:convnext_tiny", 64), ("timm:convnext_atto", 64),
    ("timm:vit_tiny_patch16_224", 224),
])
def test_export_breadth(tmp_path, name, size):
    from PIL import Image
    import numpy as np

    checkpoint = _fake_run(tmp_path, name, size)
    images = tmp_path / "imgs"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(9):
        Image.fromarray(rng.integers(0, 255, (size + 8, size + 8, 3), dtype=np.uint8)).save(images / f"{i}.png")
    result = zoo.export(checkpoint=checkpoint, format="onnx", output=tmp_path / "out", images=images)
    assert result.passed, result.parity
