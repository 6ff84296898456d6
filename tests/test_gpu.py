"""CUDA paths: the same results as on CPU where they must agree, and training that learns. Skip without CUDA."""

import json
from dataclasses import replace

import pytest
import torch

import zoo
from zoo.data.batch_augment import BatchAugment
from zoo.specs import Preprocessing

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

PRE = Preprocessing(input_size=32, resize_size=36)  # ImageNet mean/std, bilinear


@pytest.mark.parametrize("preset", ["none", "light", "cifar", "strong"])
def test_batch_augment_on_cuda_matches_cpu(preset):
    pre = replace(PRE, resize_size=32) if preset == "cifar" else PRE
    side = pre["resize_size"]
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
