"""Why `--pipeline gpu-decode` trained resnet50 on food20 into a NaN loss on the H200 (epoch 1), where the
decode-once pipeline did not: the decoded batches against zoo's CPU reader, then the loss per step.

    python benchmarks/gpu_decode_diagnose.py [--data-root DIR] [--batches 20]
"""

import argparse
import math

import torch

import zoo
from torchvision.io import ImageReadMode, decode_jpeg

from zoo.data import gpu_decode
from zoo.data.gpu_decode import GpuDecodeBatches, to_square
from zoo.data.decode import decode_rgb
from _table import SHARED_DATA

parser = argparse.ArgumentParser()
parser.add_argument("--data-root", default=SHARED_DATA)
parser.add_argument("--batches", type=int, default=20)
args = parser.parse_args()

device = torch.device("cuda")
dataset = zoo.create_dataset("food20", data_root=args.data_root)
source = dataset.train
batches = GpuDecodeBatches(source, 232, None, 256, device, shuffle=False, workers=8)
worst, checked = 0.0, 0
for b, (images, labels) in enumerate(batches):
    if b >= args.batches:
        break
    for i in range(0, len(images), 37):  # a few images of each batch against zoo's reader
        path = source.paths[b * 256 + i]
        reference = to_square(torch.from_numpy(__import__("numpy").array(decode_rgb(path))).permute(2, 0, 1), 232)
        diff = (images[i].cpu().int() - reference.int()).abs()
        worst = max(worst, diff.float().mean().item())
        checked += 1
    if images.dtype != torch.uint8 or images.min() < 0:
        print(f"batch {b}: dtype {images.dtype} min {images.min()}")
print(f"checked {checked} images: worst mean |diff| vs zoo's reader {worst:.2f} levels")
# the finding (session 3): the pixels are right; nvJPEG writes over memory the training step still reads.
# Each ordering of zoo/data/gpu_decode.py against the unordered call zoo made before.
unordered = gpu_decode._decode_jpegs
for ordering in ("unordered", "side", "drain"):
    gpu_decode.DECODE_ORDERING = ordering if ordering != "unordered" else "side"
    gpu_decode._decode_jpegs = (lambda jpegs, device: decode_jpeg(jpegs, mode=ImageReadMode.RGB, device=device)) \
        if ordering == "unordered" else unordered
    try:
        result = zoo.finetune(model="resnet50", data="food20", data_root=args.data_root, pipeline="gpu-decode",
                              image_size=224, batch_size=256, epochs=1, max_steps_per_epoch=39, optimizer="sgd",
                              augment="light", precision="bf16", compile=False, quiet=True,
                              output=f"/tmp/diag-{ordering}")
        last = result.history[-1]
        print(f"{ordering}: train loss {last.train_loss:.4f} finite {math.isfinite(last.train_loss)}, "
              f"{last.images_per_s:,.0f} img/s", flush=True)
    except Exception as exc:  # noqa: BLE001 - the NaN stop is the finding
        print(f"{ordering}: {type(exc).__name__}: {exc}", flush=True)
