"""--pipeline gpu-decode checked on the CPU: the same pixels as zoo's reader + torchvision's resize, the files
the GPU decoder must not get decoded by zoo's reader, training that learns; and the data-wait figure."""

import json

import numpy as np
import torch
from torchvision.transforms import v2

import zoo
from zoo.data.dataset import FileImages, ImageDataset
from zoo.data.decode import decode_rgb
from zoo.data.gpu_decode import GpuDecodeBatches, gpu_decodable
from tests.conftest import shared_data


def _reference(path, side):
    """zoo's reader, then torchvision's antialiased resize of the shorter side and the centre square."""
    image = v2.functional.pil_to_tensor(decode_rgb(path))
    return v2.CenterCrop(side)(v2.Resize(side, antialias=True)(image))


def test_gpu_decode_path_gives_the_readers_pixels(tmp_path):
    photos = sorted((shared_data("hymenoptera") / "val" / "ants").glob("*.jpg"))[:6]
    odd = [shared_data("bad_inputs") / name for name in ("exif_orientation_6.jpg", "cmyk.jpg", "gray_L.png",
                                                         "rgba.png", "gray16_I16.png")]
    odd = [p for p in odd if p.exists()]
    assert len(odd) >= 3
    paths = [str(p) for p in photos + odd]
    side = 48
    batches = GpuDecodeBatches(FileImages(paths, np.zeros(len(paths), dtype=np.int64)), side, None, batch_size=4,
                               device=torch.device("cpu"), shuffle=False, workers=0)
    squares = torch.cat([images for images, _ in batches])
    assert squares.shape == (len(paths), 3, side, side) and squares.dtype == torch.uint8
    for path, square in zip(paths, squares):
        difference = (square.int() - _reference(path, side).int()).abs()
        assert difference.float().mean() < 1.0 and difference.max() <= 12, path  # JPEG decoders and rounding
    assert gpu_decodable(photos[0].read_bytes())
    assert not gpu_decodable((shared_data("bad_inputs") / "exif_orientation_6.jpg").read_bytes())  # rotated: reader
    assert not gpu_decodable((shared_data("bad_inputs") / "gray_L.png").read_bytes())


def test_training_with_gpu_decode_learns(class_folders, tmp_path):
    jpegs = tmp_path / "jpegs"
    for png in class_folders.rglob("*.png"):
        target = jpegs / png.parent.name / (png.stem + ".jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        decode_rgb(png).save(target, quality=95)
    result = zoo.finetune(model="example_tinynet", data=str(jpegs), epochs=6, lr=3e-3, batch_size=8,
                          pipeline="gpu-decode", output=str(tmp_path / "run"), quiet=True, workers=0)
    assert result.best_top1 >= 0.8  # three colours: chance is 0.33
    meta = json.loads((tmp_path / "run" / "best.json").read_text())
    assert meta["training_inputs"]["pipeline"] == "gpu-decode"


class SlowImages(FileImages):
    def load(self, index):
        import time

        time.sleep(0.02)
        return super().load(index)


def test_data_wait_share_tells_a_starving_loop(class_folders, tmp_path):
    dataset = zoo.create_dataset(str(class_folders))
    slow = ImageDataset("slow", dataset.classes, {split: SlowImages(s.paths, s.labels) for split, s in
                                                  dataset.splits.items()}, "classfolders", dataset.root)
    common = dict(epochs=1, batch_size=8, quiet=True, workers=0, cache="none", pipeline="workers")
    pre = zoo.model_info("example_tinynet").preprocessing()
    zoo.fit(zoo.create_model("example_tinynet", num_classes=3), slow, zoo.TrainConfig(output=str(tmp_path / "slow"),
                                                                                      **common), pre)
    zoo.fit(zoo.create_model("example_tinynet", num_classes=3), zoo.create_dataset("example_shapes"),
            zoo.TrainConfig(output=str(tmp_path / "fast"), **{**common, "cache": "auto", "pipeline": "auto"}), pre)
    slow_row = json.loads((tmp_path / "slow" / "metrics.jsonl").read_text().splitlines()[0])
    fast_row = json.loads((tmp_path / "fast" / "metrics.jsonl").read_text().splitlines()[0])
    assert slow_row["data_wait_frac"] > 0.6 > fast_row["data_wait_frac"]
    assert "data_wait_frac" in (tmp_path / "slow" / "metrics.csv").read_text().splitlines()[0]
