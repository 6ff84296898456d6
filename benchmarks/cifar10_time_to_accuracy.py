"""Wall time for resnet18_cifar to reach --target test top-1 on CIFAR-10 through zoo.finetune.

Runs examples/cifar10_fast.sh's settings from the library (same options), timing from the start of
training (fit(): the dataset scan, decoding, compile warm-up and every evaluation included) to the
end of the first epoch whose test top-1 reaches the target. Data: cifar10-jpg (all 60,000 images as JPEG folders) under --data-root.

    python benchmarks/cifar10_time_to_accuracy.py [--epochs 30] [--batch-size 512] [--target 0.94] [--smoke]
"""

import argparse
import time
from pathlib import Path

import torch

from _engine_runs import engine_epochs
from _table import SHARED_DATA, report

parser = argparse.ArgumentParser()
parser.add_argument("--data-root", default=SHARED_DATA, help="folder holding cifar10-jpg/")
parser.add_argument("--epochs", type=int, default=30)
parser.add_argument("--batch-size", type=int, default=512)
parser.add_argument("--lr", type=float, default=0.4)
parser.add_argument("--target", type=float, default=0.94)
parser.add_argument("--smoke", action="store_true", help="the 1,000-image pickle sample, 1 epoch")
args = parser.parse_args()
data = str(Path(args.data_root) / ("cifar10" if args.smoke else "cifar10-jpg"))
if args.smoke:
    args.epochs, args.batch_size = 1, 64

# the options of examples/cifar10_fast.sh
options = dict(optimizer="sgd", lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4, scheduler="onecycle",
               label_smoothing=0.1, augment="cifar", epochs=args.epochs, batch_size=args.batch_size)
t0 = time.perf_counter()
epochs = engine_epochs("resnet18_cifar", data, **options)
total = time.perf_counter() - t0
reached = next((row for row in epochs if row["val_top1"] >= args.target), None)
rows = [{"epoch": row["epoch"], "val_top1": row["val_top1"], "epoch_s": row["epoch_time_s"],
         "images_per_s": row["images_per_s"], "elapsed_s": row["elapsed_s"]} for row in epochs]
print(f"target {args.target:.2f}: " + (f"reached at epoch {reached['epoch']}, {reached['elapsed_s']:.1f} s"
                                       if reached else f"not reached (best {max(r['val_top1'] for r in epochs):.4f})"))
report("cifar10_time_to_accuracy", rows, {
    "device": "cuda" if torch.cuda.is_available() else "cpu", "target": args.target, "options": options,
    "time_to_target_s": reached["elapsed_s"] if reached else None, "total_s": total}, smoke=args.smoke)
