"""CUDA paths: the same results as on CPU where they must agree, and training that learns. Skip without CUDA."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

import zoo
from zoo.data.batch_augment import BatchAugment
from zoo.specs import Preprocessing

from tests.conftest import shared_data

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

PRE = Preprocessing(input_size=32, resize_size=36)  # ImageNet mean/std, bilinear


@pytest.mark.parametrize("preset", ["none", "light", "cifar", "strong"])
def test_batch_augment_on_cuda_matches_cpu(preset):
    pre = replace(PRE, resize_size=32) if preset == "cifar" else PRE
    side = pre.resize_size
    images = torch.randint(0, 256, (16, 3, side, side), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(1)
    on_cpu = BatchAugment(pre, preset)(images)
    torch.manual_seed(1)  # random parameters come from the CPU generator: the same draw on both devices
    on_gpu = BatchAugment(pre, preset)(images.cuda())
    assert on_gpu.is_cuda
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, rtol=0, atol=1e-4)


def test_cuda_training_learns_and_records_gpu_memory(tmp_path):
    run = tmp_path / "run"
    result = zoo.finetune(model="example_tinynet", data="example_shapes", epochs=6, lr=3e-3, batch_size=32,
                          device="cuda", output=str(run), quiet=True)
    assert result.best_top1 >= 0.8  # CPU box: 0.97-1.0 with the same settings
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(row["peak_gpu_mem_mb"] > 0 for row in rows)
    assert json.loads((run / "best.json").read_text())["training_inputs"]["pipeline"] == "device"
    exported = zoo.export(run, format="onnx", output=tmp_path / "export")
    assert exported.passed


def test_gpu_decode_on_cuda_gives_the_readers_pixels(tmp_path):
    """nvJPEG + resize on the GPU against zoo's reader + torchvision's resize on the CPU."""
    from PIL import Image
    from torchvision.transforms import v2

    from zoo.data.dataset import FileImages
    from zoo.data.decode import decode_rgb
    from zoo.data.gpu_decode import GpuDecodeBatches

    paths = []
    for i, (width, height) in enumerate([(500, 375), (333, 500), (640, 640), (97, 211), (48, 48)]):
        ys, xs = np.mgrid[0:height, 0:width]
        smooth = np.stack([xs * 255 // width, ys * 255 // height, (xs + ys) * 127 // (width + height)], -1)
        paths.append(tmp_path / f"photo{i}.jpg")
        Image.fromarray(smooth.astype(np.uint8)).save(paths[-1], quality=90)
    side = 64
    batches = GpuDecodeBatches(FileImages([str(p) for p in paths], np.zeros(len(paths), dtype=np.int64)), side, None,
                               batch_size=3, device=torch.device("cuda"), shuffle=False, workers=0)
    squares = torch.cat([images for images, _ in batches])
    assert squares.is_cuda and squares.shape == (len(paths), 3, side, side)
    for path, square in zip(paths, squares.cpu()):
        reference = v2.CenterCrop(side)(v2.Resize(side, antialias=True)(v2.functional.pil_to_tensor(decode_rgb(path))))
        difference = (square.int() - reference.int()).abs()
        assert difference.float().mean() < 1.0 and difference.max() <= 12, path  # JPEG decoders and rounding


def test_gpu_decoded_images_live_on_their_own_stream_and_training_stays_finite(tmp_path):
    """nvJPEG's hardware decoder overwrote memory the previous step still read (NaN by step 39 on an
    H200, benchmarks/gpu_decode_diagnose.py): decoded images now come from a stream of their own."""
    from zoo.data import gpu_decode

    food20 = shared_data("food20")
    result = zoo.finetune(model="resnet18", data="food20", data_root=str(food20.parent), pipeline="gpu-decode",
                          image_size=128, batch_size=128, epochs=1, max_steps_per_epoch=30, limit_val=256,
                          device="cuda", output=str(tmp_path / "run"), quiet=True)
    assert np.isfinite(result.history[-1].train_loss)
    assert gpu_decode.DECODE_ORDERING == "side" and gpu_decode._side_streams  # the decoder's stream was made


def test_compiled_training_makes_no_graphs_after_the_first_epoch(tmp_path):
    run = tmp_path / "run"
    zoo.finetune(model="example_tinynet", data="example_shapes", epochs=3, batch_size=32, device="cuda",
                 compile=True, output=str(run), quiet=True)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    graphs = [row["compiled_graphs"] for row in rows]
    assert graphs[0] >= 1 and graphs[-1] == graphs[0], graphs
