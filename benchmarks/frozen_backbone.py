"""Seconds per epoch of a full fine-tune vs a frozen backbone vs a frozen backbone on cached features,
and of the seeds' frozen feature-extractor loop (the food recipe: every image decoded and given the
strong augmentation per epoch, fp32, a loss.item() per step) against zoo's frozen path with the
same augmentation.

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

import torch

import zoo
from zoo.data.loader import TransformedImages, default_workers
from zoo.data.transforms import train_transform
from zoo.models.api import find_classifier
from _table import SHARED_DATA, progress, report

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
    "frozen backbone (strong augmentation)": dict(freeze="backbone", augment="strong"),
    "frozen backbone (light augmentation)": dict(freeze="backbone", augment="light"),
    "frozen backbone, no augmentation": dict(freeze="backbone", augment="none", feature_cache="off"),
    "frozen backbone, no augmentation, feature cache": dict(freeze="backbone", augment="none"),
}


def seed_frozen_loop() -> tuple[float, float]:
    """(seconds, images/s) of the last epoch of the seeds' frozen loop, written as they wrote it."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dataset = zoo.create_dataset(args.data, data_root=args.data_root)
    info = zoo.model_info(args.model)
    model = zoo.create_model(args.model, num_classes=dataset.num_classes)
    _, head = find_classifier(model, info.classifier.split(".")[0])
    for parameter in model.parameters():
        parameter.requires_grad = False
    for parameter in head.parameters():
        parameter.requires_grad = True
    model.to(device).train()
    images = TransformedImages(dataset.train, train_transform(info.preprocessing(args.size), "strong"))
    loader = torch.utils.data.DataLoader(images, batch_size=args.batch_size, shuffle=True,
                                         num_workers=default_workers(device))
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-3)
    for _ in range(args.epochs):
        t0, running = time.perf_counter(), 0.0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            running += loss.item()
        seconds = time.perf_counter() - t0
    return seconds, len(images) / seconds


rows = []
seed_s, seed_ips = seed_frozen_loop()
rows.append({"mode": "seeds' frozen loop (strong augmentation, fp32)", "epoch_s": seed_s, "images_per_s": seed_ips,
             "run_wall_s": 0.0, "best_val_top1": 0.0})
progress(rows[-1])
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
        progress(rows[-1])
full = rows[1]["epoch_s"]
for row in rows:
    row["vs_full"] = full / row["epoch_s"]
    row["vs_seed_frozen"] = seed_s / row["epoch_s"]
report("frozen_backbone", rows, {"model": args.model, "data": args.data, "size": args.size, "epochs": args.epochs},
       smoke=args.smoke)
