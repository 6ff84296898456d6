"""Best val top-1 of the seed recipes as their scripts train, against `zoo finetune` with defaults only.

Each row: a seed recipe that needs no pretrained weights, on shared data standing in for its own
(the same layout idea, class count and image counts as close as shared data allows), at the seed's
model, image size (112 px on a CPU) and epochs. Left: the seed's loop, optimizer, schedule, batch and
augmentation as written (benchmarks/_seed_loop.py). Right: zoo.fit with nothing but the model, image
size and epochs given; zoo resolves its `auto` defaults and records them in config.json. Both see
the same train/val images. Reports best val top-1, the epoch of the best, and wall time.

    python benchmarks/quality.py [--rows hand_gestures flowers cifar10 hymenoptera] [--scale 0.5] [--smoke]
                                 [--recipes defaults ema mixup] [--seeds 0 1]

--recipes adds a row per recipe piece on top of zoo's defaults (ema: --ema 0.999, mixup: --mixup 0.2,
cutmix: --cutmix 1.0, trivialaugment / randaugment: --augment ...), each run once per --seeds value (the
mean is the row's figure, each seed's value beside it), so a difference is not one seed's noise.

--scale shortens every row (epochs and images per class) to fit a CPU; the table says what ran.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import torch

import zoo
from zoo.data.dataset import ImageDataset
from _seed_loop import SeedRecipe, as_is, cifar_crop, plain, random_resized_crop, run_seed
from _table import SHARED_DATA, report

parser = argparse.ArgumentParser()
parser.add_argument("--rows", nargs="+", default=["hand_gestures", "flowers", "cifar10", "hymenoptera"])
parser.add_argument("--scale", default="1", help="fraction of each row's epochs and images to run: one number, or "
                    "per row as hand_gestures=0.4,cifar10=0.25 (rows not named run whole)")
parser.add_argument("--data-root", default=SHARED_DATA)
parser.add_argument("--seed-results", help="reuse the seed rows of an earlier quality.json (same rows and scale): "
                    "only zoo's side runs again")
parser.add_argument("--recipes", nargs="+", default=["defaults"], help="zoo variants: defaults " + " ".join(
    ["ema", "mixup", "cutmix", "trivialaugment", "randaugment"]))
parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="zoo's side runs once per seed")
parser.add_argument("--smoke", action="store_true", help="a few images and epochs per row, to check the script runs")
args = parser.parse_args()


def linear_warmup_cosine(warmup_epochs: int, epochs: int):
    def make(optimizer, steps_per_epoch):
        warmup, total = warmup_epochs * steps_per_epoch, epochs * steps_per_epoch

        def factor(step):
            if step < warmup:
                return (step + 1) / (warmup + 1)
            return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    return make


def warmup_multistep(warmup_epochs: int, milestones: tuple[int, ...]):
    def make(optimizer, steps_per_epoch):
        def factor(step):
            epoch = step / steps_per_epoch
            warm = min(1.0, (step + 1) / (warmup_epochs * steps_per_epoch + 1))
            return warm * 0.1 ** sum(epoch >= m for m in milestones)

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    return make


# The seeds as the issue describes them: model, size, epochs, batch, optimizer, schedule, augmentation.
ROWS = {
    "hand_gestures": dict(
        data="food20", classes=14, per_class=163, split="every 5th", model="resnet50", size=112, epochs=30,
        seed=lambda e: SeedRecipe("resnet50", 112, e, 64, lambda m: torch.optim.Adam(m.parameters(), lr=1e-3),
                                  None, plain)),
    "flowers": dict(
        data="food20", classes=5, per_class=80, split="300/100", model="resnet18", size=112, epochs=30,
        seed=lambda e: SeedRecipe("resnet18", 112, e, 4, lambda m: torch.optim.AdamW(m.parameters(), lr=1e-4),
                                  linear_warmup_cosine(1, e), plain, step_scheduler_per_batch=True)),
    "cifar10": dict(
        data="cifar10", classes=10, per_class=None, split="the sample's test batch", model="resnet18_cifar", size=32,
        epochs=160,
        seed=lambda e: SeedRecipe("resnet18_cifar", 32, e, 128, lambda m: torch.optim.SGD(
            m.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4),
            warmup_multistep(2, (round(e * 100 / 160), round(e * 150 / 160))), cifar_crop,
            step_scheduler_per_batch=True, eval_transform=as_is)),
    "hymenoptera": dict(
        data="hymenoptera", classes=2, per_class=None, split="its val/", model="resnet18", size=112, epochs=25,
        seed=lambda e: SeedRecipe("resnet18", 112, e, 4, lambda m: torch.optim.SGD(m.parameters(), lr=1e-3,
                                                                                 momentum=0.9),
                                  lambda o, _: torch.optim.lr_scheduler.StepLR(o, max(1, round(e * 7 / 25)), 0.1),
                                  random_resized_crop)),
}


def stand_in(row: dict, scale: float) -> ImageDataset:
    """The shared data cut to the seed's class count and image counts (times ``scale``)."""
    dataset = zoo.create_dataset(row["data"], data_root=args.data_root)
    classes = list(range(row["classes"]))  # the first classes: their labels stay 0..k-1
    if row["per_class"] is None:
        if scale >= 1:
            return dataset
        return _subset(dataset, classes, _share(dataset.train, classes, scale), _share(dataset.eval, classes, scale))
    count = max(5, round(row["per_class"] * scale))
    if row["split"] == "every 5th":  # the seed's split: every 5th image validates
        images = _first(dataset.train, classes, count)
        order = np.arange(len(images))
        return _subset(dataset, classes, images.subset(order[order % 5 != 4]), images.subset(order[order % 5 == 4]))
    train_n = round(count * 0.75)  # flowers: 300 train / 100 val over 5 classes
    return _subset(dataset, classes, _first(dataset.train, classes, train_n),
                   _first(dataset.train, classes, count - train_n, skip=train_n))


def _first(source, classes, n, skip=0):
    labels = np.asarray(source.labels)
    return source.subset(np.concatenate([np.flatnonzero(labels == c)[skip:skip + n] for c in classes]))


def _share(source, classes, scale):
    labels = np.asarray(source.labels)
    return source.subset(np.concatenate([np.flatnonzero(labels == c)[:max(2, round((labels == c).sum() * scale))]
                                         for c in classes]))


def _subset(dataset: ImageDataset, classes, train, val) -> ImageDataset:
    return ImageDataset(dataset.name, [dataset.classes[c] for c in classes], {"train": train, "val": val},
                        dataset.layout, dataset.root)


RECIPES = {"defaults": {}, "ema": {"ema": "0.999"}, "mixup": {"mixup": 0.2}, "cutmix": {"cutmix": 1.0},
           "trivialaugment": {"augment": "trivialaugment"}, "randaugment": {"augment": "randaugment"}}


def zoo_defaults(row: dict, dataset: ImageDataset, epochs: int, seed: int = 0, **options) -> tuple[list[dict], dict]:
    torch.manual_seed(seed)
    model = zoo.create_model(row["model"], num_classes=dataset.num_classes)
    with tempfile.TemporaryDirectory() as tmp:
        info = zoo.model_info(row["model"])
        config = zoo.TrainConfig(epochs=epochs, quiet=True, output=f"{tmp}/run", seed=seed, **options)
        result = zoo.fit(model, dataset, config,
                         info.preprocessing(None if row["size"] == info.input_size else row["size"]),
                         model_name=row["model"])
        resolved = json.loads((result.run_dir / "config.json").read_text())
    return [epoch.metrics() for epoch in result.history], resolved


def scale_of(name: str) -> float:
    if "=" not in args.scale:
        return float(args.scale)
    per_row = dict(part.split("=") for part in args.scale.split(","))
    return float(per_row.get(name, 1))


table = []
for name in args.rows:
    row = ROWS[name]
    scale = 0.02 if args.smoke else scale_of(name)
    epochs = 2 if args.smoke else max(2, round(row["epochs"] * scale))
    dataset = stand_in(row, scale)
    common = {"row": name, "model": row["model"], "size": row["size"], "epochs": epochs, "scale": scale,
              "train_images": len(dataset.train), "val_images": len(dataset.eval)}
    earlier = [r for r in json.loads(Path(args.seed_results).read_text())["rows"]
               if r["row"] == name and r["recipe"] == "seed as written" and r["epochs"] == epochs] \
        if args.seed_results else []
    if earlier:
        table.append(earlier[0])
    else:
        seed = run_seed(row["seed"](epochs), dataset)
        best_seed = max(range(len(seed)), key=lambda i: seed[i]["val_top1"])
        table.append({**common, "recipe": "seed as written", "best_val_top1": seed[best_seed]["val_top1"],
                      "best_epoch": best_seed + 1, "wall_s": seed[-1]["elapsed_s"]})
    seed_top1 = table[-1]["best_val_top1"]
    for recipe in args.recipes:
        bests, walls, resolved = [], [], {}
        for seed in args.seeds:
            zoo_rows, resolved = zoo_defaults(row, dataset, epochs, seed, **RECIPES[recipe])
            bests.append(max(r["val_top1"] for r in zoo_rows))
            walls.append(zoo_rows[-1]["elapsed_s"])
        label = "zoo defaults" if recipe == "defaults" else f"zoo defaults + {recipe}"
        table.append({**common, "recipe": label, "best_val_top1": float(np.mean(bests)),
                      "per_seed": " ".join(f"{b:.3f}" for b in bests), "vs_seed": float(np.mean(bests)) - seed_top1,
                      "wall_s": float(np.mean(walls)),
                      "resolved": {k: resolved[k] for k in ("augment", "label_smoothing", "warmup_epochs", "lr",
                                                             "weight_decay", "batch_size", "optimizer", "ema", "mixup",
                                                             "cutmix") if k in resolved}})
        print(f"{name}: seed {seed_top1:.3f}, {label} {table[-1]['best_val_top1']:.3f} "
              f"({table[-1]['vs_seed']:+.3f}; seeds {table[-1]['per_seed']})", flush=True)
for r in table:
    r.setdefault("per_seed", "")
    r.setdefault("vs_seed", 0.0)
    r.setdefault("best_epoch", 0)
report("quality", [{k: v for k, v in r.items() if k != "resolved"} for r in table],
       {"scale": args.scale, "resolved_defaults": {r["row"]: r.get("resolved") for r in table if "resolved" in r}},
       smoke=args.smoke)
