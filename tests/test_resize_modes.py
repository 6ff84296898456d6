"""--resize crop|squash|letterbox and --crop-pct: the geometry, training, checkpoints, every export's gate,
the embedded-preprocessing ONNX and the numpy consumer, on bad_inputs' 2000x40 panorama and hymenoptera."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import zoo
from zoo.cli import app
from zoo.data.decoded_cache import CacheSpec
from zoo.errors import ZooError
from zoo.exporter.embedded import WithPreprocessing
from zoo.specs import Preprocessing

from tests.conftest import ROOT, shared_data

runner = CliRunner()
SIDE = 64


def _panorama(width=2000, height=40) -> Image.Image:
    """Red at the left end, blue at the right end, green between: what a centre crop throws away is known."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 10] = (255, 0, 0)
    pixels[:, width // 10: -width // 10] = (0, 255, 0)
    pixels[:, -width // 10:] = (0, 0, 255)
    return Image.fromarray(pixels)


def _geometry(mode: str, image: Image.Image) -> np.ndarray:
    pre = Preprocessing.for_size(SIDE).with_resize(mode)
    return pre.eval_geometry()(image).permute(1, 2, 0).numpy().astype(int)


def test_crop_cuts_the_ends_off_a_panorama_and_the_other_modes_keep_them():
    crop, squash, letterbox = (_geometry(mode, _panorama()) for mode in ("crop", "squash", "letterbox"))
    assert crop.shape == squash.shape == letterbox.shape == (SIDE, SIDE, 3)
    assert crop[..., 0].max() == 0 and crop[..., 2].max() == 0  # only the green middle survives
    for whole in (squash, letterbox):
        assert whole[:, 0, 0].max() > 200 and whole[:, -1, 2].max() > 200  # both ends are in the square
    assert (squash.sum(axis=2) > 0).all()  # no black bars: every pixel lit
    lit_rows = np.flatnonzero(letterbox.sum(axis=(1, 2)) > 0)
    assert lit_rows.tolist() == [32]  # 64 * 40 // 2000 = 1 row, at round((64 - 1) / 2) = 32; black above and below


def test_letterbox_keeps_the_aspect_ratio_and_centres_the_image():
    image = Image.fromarray(np.full((50, 100, 3), 200, np.uint8))
    box = _geometry("letterbox", image)
    lit = np.flatnonzero(box.sum(axis=(1, 2)) > 0)
    assert (lit.min(), lit.max()) == (16, 47)  # 64 * 50 // 100 = 32 rows, top = round((64 - 32) / 2) = 16
    assert box[lit.min():lit.max() + 1].min() == 200


def test_crop_pct_sets_the_resize_and_the_modes_check_what_they_are_given():
    assert Preprocessing.for_size(224).with_resize("crop", 1.0).resize_size == 224
    assert Preprocessing.for_size(224).with_resize("crop", 0.95).resize_size == 236
    assert Preprocessing.for_size(224).with_resize("squash").resize_size == 224
    with pytest.raises(ZooError, match="--crop-pct applies to --resize crop"):
        Preprocessing.for_size(224).with_resize("letterbox", 0.9)
    with pytest.raises(ZooError, match="unknown resize mode 'pad'"):
        Preprocessing.for_size(224).with_resize("pad")
    damaged = {**Preprocessing.for_size(224).to_dict(), "resize_rule": "squash"}  # crop still "center"
    with pytest.raises(ZooError, match="not a resize mode zoo knows"):
        Preprocessing.from_dict(damaged, "model.json")


def test_training_caches_are_keyed_by_mode_and_hold_whole_images(tmp_path):
    pre = Preprocessing.for_size(SIDE)
    keys = {CacheSpec.for_training(pre.with_resize(mode)).key() for mode in ("crop", "squash", "letterbox")}
    assert len(keys) == 3
    path = tmp_path / "panorama.png"
    _panorama().save(path)
    from zoo.data.dataset import FileImages

    source = FileImages([str(path)], np.zeros(1, dtype=np.int64))
    square = CacheSpec.for_training(pre.with_resize("letterbox")).loader(source)(0)
    assert square.shape == (SIDE, SIDE, 3) and square[:20].max() == 0 and square[:, 0, 0].max() > 200


@pytest.mark.parametrize("mode", ["squash", "letterbox", "crop"])
def test_embedded_preprocessing_computes_the_eval_transform(mode):
    pre = Preprocessing.for_size(SIDE).with_resize(mode)
    graph = WithPreprocessing(torch.nn.Identity(), pre)
    rng = np.random.default_rng(0)
    for width, height in [(200, 40), (37, 90), (500, 333)]:
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        reference = pre.eval_transform()(Image.fromarray(pixels))
        embedded = graph(torch.from_numpy(pixels)[None])[0]
        one_level = 1 / 255 / min(pre.std) + 1e-5  # a tie rounded the other way: one level, rarely
        assert (reference - embedded).abs().max() <= one_level, (width, height)
        assert ((reference - embedded).abs() > 1e-4).float().mean() < 0.001


def test_the_cli_refuses_crop_pct_with_squash_in_one_line(tmp_path):
    result = runner.invoke(app, ["finetune", "example_tinynet", "--data", "example_shapes", "--resize", "squash",
                                 "--crop-pct", "0.9", "--dry-run", "-o", str(tmp_path / "run")])
    assert result.exit_code != 0
    assert "--crop-pct applies to --resize crop" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["finetune", "example_tinynet", "--data", "example_shapes", "--resize", "letterbox",
                                 "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["geometry"].startswith("letterbox into") and plan["resize_size"] == plan["image_size"]


@pytest.fixture(scope="module", params=["squash", "letterbox"])
def mode_run(request, tmp_path_factory):
    shared_data("hymenoptera")
    run = tmp_path_factory.mktemp(request.param) / "run"
    zoo.finetune(model="example_tinynet", data="hymenoptera", epochs=2, lr=3e-3, batch_size=32, output=str(run),
                 quiet=True, workers=0, resize=request.param, limit_train=96, limit_val=48)
    return request.param, run


@pytest.mark.slow
def test_each_mode_passes_every_export_gate_and_says_so_in_the_metadata(mode_run, tmp_path):
    mode, run = mode_run
    saved = json.loads((run / "best.json").read_text())["preprocessing"]
    assert (saved["resize_rule"], saved["crop"]) == ({"squash": "squash", "letterbox": "letterbox"}[mode], "none")
    out = tmp_path / "export"
    plain = zoo.export(run, format="onnx,pt2", output=out)
    embedded = zoo.export(run, format="onnx", output=out, embed_preprocessing=True)
    assert plain.passed and embedded.passed
    import onnx

    props = {p.key: p.value for p in onnx.load(str(out / "model-uint8.onnx")).metadata_props}
    assert props["zoo.resize_rule"] == mode and props["zoo.crop"] == "none"


@pytest.mark.slow
def test_the_numpy_consumer_reproduces_zoo_predict_in_each_mode(mode_run, tmp_path):
    mode, run = mode_run
    out = tmp_path / "export"
    zoo.export(run, format="onnx", output=out)
    zoo.export(run, format="onnx", output=out, embed_preprocessing=True)
    photos = sorted((shared_data("hymenoptera") / "val").rglob("*.jpg"))[::20][:6]
    images = [str(shared_data("bad_inputs") / "panorama_2000x40.jpg"), *map(str, photos)]
    reference = zoo.predict(run, images, top_k=2)
    for file in ("model.onnx", "model-uint8.onnx"):
        done = subprocess.run([sys.executable, str(ROOT / "examples" / "onnx_consumer.py"), str(out / file), *images],
                              capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": ""})
        assert done.returncode == 0, done.stderr[-2000:]
        consumer = [json.loads(line) for line in done.stdout.splitlines()]
        for a, b in zip(consumer, reference, strict=True):
            assert a["top"][0]["label"] == b["top"][0]["label"], (file, a["image"])
            assert abs(a["top"][0]["prob"] - b["top"][0]["prob"]) <= 2e-3, (file, a["image"])
