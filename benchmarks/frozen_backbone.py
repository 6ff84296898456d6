"""Seconds per epoch of a full fine-tune vs a frozen backbone vs a frozen backbone on cached features.

Trains --model on --data for --epochs with the engine itself (zoo.finetune) and reports the
last epoch's time (the first carries warm-up), the whole run's wall time (including the
decode-once cache and, for the feature cache, the one pass that computes the features) and
the best val top-1. Random init: no published weights can be had on these machines, so the
accuracy column only shows that each mode trains; the timings are what this measures.

    python benchmarks/frozen_backbone.py [--model resnet50] [--data hymenoptera] [--size 112] [--smoke]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import zoo
from _table import SHARED_DATA, report

parser = argparse.ArgumentParser()
parser.add_argument("--model", default="resnet50")
parser.add_argument("--data", default="hymenoptera")
parser.add_argument("--size", type=int, default=112)
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--data-root", default=SHARED_DATA, help="folder holding named datasets")
parser.add_argument("--smoke", action="store_true", help="the tiny example model and dataset, to check the script runs")
args = parser.parse_args()
if args.smoke:
    args.model, args.data, args.size, args.epochs = "example_tinynet", "example_shapes", None, 2

MODES = {
    "full fine-tune (light augmentation)": dict(freeze="none", augment="light"),
    "frozen backbone (light augmentation)": dict(freeze="backbone", augment="light"),
    "frozen backbone, no augmentation": dict(freeze="backbone", augment="none", feature_cache="off"),
    "frozen backbone, no augmentation, feature cache": dict(freeze="backbone", augment="none"),
}
rows = []
with tempfile.TemporaryDirectory() as tmp:
    for label, options in MODES.items():
        run = Path(tmp) / label.replace(" ", "_")
        t0 = time.perf_counter()
        result = zoo.finetune(model=args.model, data=args.data, data_root=args.data_root, image_size=args.size,
                              epochs=args.epochs, batch_size=args.batch_size, optimizer="adam", lr=1e-3, scheduler="none",
                              output=str(run), quiet=True, **options)
        wall = time.perf_counter() - t0
        last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
        rows.append({"mode": label, "epoch_s": last["epoch_time_s"], "images_per_s": last["images_per_s"],
                     "run_wall_s": wall, "best_val_top1": result.best_top1})
full = rows[0]["epoch_s"]
for row in rows:
    row["speed_up"] = full / row["epoch_s"]
report("frozen_backbone", rows, {"model": args.model, "data": args.data, "size": args.size, "epochs": args.epochs},
       smoke=args.smoke)
