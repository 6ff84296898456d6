"""zoo's engine vs the seeds' training loop on a CPU, side by side in one run, on real photos.

For each dataset and model, the same epochs, image size, batch, optimizer (AdamW 1e-3, cosine) and
augmentation (RandomResizedCrop + flip) in
  seed    the seeds' loop (benchmarks/_seed_loop.py): PIL decode per image per epoch in a worker,
          fp32, NCHW, loss.item() every step;
  zoo     zoo.fit with its defaults: decode-once cache, batches augmented in-process, bf16 autocast
          where the CPU computes bf16 natively, channels_last, compile off on CPU;
and, for the first model and dataset, zoo with pieces switched off to show what each contributes.
Reports training images/s per epoch after the first, best val top-1 after the same epochs, and the
wall time (from the start, data loading included) to reach the lower of the two runs' best accuracy.
``--compile`` adds a compiled zoo run (its warm-up is the first epoch's extra time).

    python benchmarks/cpu_train.py [--models resnet18 resnet50] [--data hymenoptera food20] [--smoke]

An AVX2-only CPU can be stood in for on a newer one by capping oneDNN and ATen's kernels (zoo then picks
fp32, as it does on such a CPU): ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python cpu_train.py ...
"""

import argparse
import tempfile

import numpy as np
import torch

import zoo
from zoo.data.dataset import ImageDataset
from zoo.engine.parts import cpu_has_native_bf16
from _seed_loop import SeedRecipe, random_resized_crop, run_seed
from _table import SHARED_DATA, report

parser = argparse.ArgumentParser()
parser.add_argument("--models", nargs="+", default=["resnet50", "resnet18"])
parser.add_argument("--data", nargs="+", default=["hymenoptera", "food20"])
parser.add_argument("--size", type=int, default=112)
parser.add_argument("--epochs", type=int, default=4)
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--per-class", type=int, default=80, help="food20 train images per class (val: a quarter)")
parser.add_argument("--compile", action="store_true", help="also time a compiled zoo run")
parser.add_argument("--data-root", default=SHARED_DATA)
parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the script runs")
args = parser.parse_args()
if args.smoke:
    args.models, args.data, args.size, args.epochs, args.per_class = ["resnet18"], ["hymenoptera"], 32, 2, 4

ABLATIONS = {  # zoo runs with pieces off (or forced): what each contributes on this CPU class
    "zoo: cache only (fp32, NCHW)": dict(precision="fp32", channels_last=False),
    "zoo: + channels_last (fp32)": dict(precision="fp32", channels_last=True),
    "zoo: bf16 forced (emulated without AVX512-BF16/AMX)": dict(precision="bf16"),
}


def load(name: str) -> ImageDataset:
    dataset = zoo.create_dataset(name, data_root=args.data_root)
    if name != "food20":
        if args.smoke:
            return _per_class(dataset, 8, 4)
        return dataset
    return _per_class(dataset, args.per_class, max(1, args.per_class // 4))


def _per_class(dataset: ImageDataset, train: int, val: int) -> ImageDataset:
    """The first ``train``/``val`` images of each class: a stand-in of a few thousand photos."""
    def pick(source, n):
        labels = np.asarray(source.labels)
        return source.subset(np.concatenate([np.flatnonzero(labels == c)[:n] for c in range(dataset.num_classes)]))

    return ImageDataset(dataset.name, dataset.classes, {"train": pick(dataset.train, train),
                                                        "val": pick(dataset.eval, val)}, dataset.layout, dataset.root)


def seed_rows(model: str, dataset: ImageDataset) -> list[dict]:
    def adamw(net):
        return torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)

    def cosine(optimizer, steps_per_epoch):
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.epochs * steps_per_epoch)

    recipe = SeedRecipe(model, args.size, args.epochs, args.batch_size, adamw, cosine, random_resized_crop,
                        step_scheduler_per_batch=True)
    return run_seed(recipe, dataset)


def zoo_rows(model: str, dataset: ImageDataset, **options) -> list[dict]:
    torch.manual_seed(0)
    net = zoo.create_model(model, num_classes=dataset.num_classes)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = zoo.TrainConfig(epochs=args.epochs, batch_size=args.batch_size, augment="light", quiet=True,
                              output=f"{tmp}/run", **options)
        result = zoo.fit(net, dataset, cfg, zoo.model_info(model).preprocessing(args.size), model_name=model)
    return [epoch.metrics() for epoch in result.history]


def summary(loop: str, model: str, data: str, rows: list[dict], target: float) -> dict:
    steady = rows[1:] or rows
    reached = next((r["elapsed_s"] for r in rows if r["val_top1"] >= target), float("nan"))
    return {"data": data, "model": model, "loop": loop,
            "images_per_s": float(np.mean([r["images_per_s"] for r in steady])),
            "first_epoch_s": rows[0].get("train_s", rows[0].get("epoch_time_s")),
            "best_val_top1": max(r["val_top1"] for r in rows), "time_to_target_s": reached, "target": target,
            "wall_s": rows[-1]["elapsed_s"]}


table = []
for data in args.data:
    dataset = load(data)
    for model in args.models:
        runs = {"seed loop": seed_rows(model, dataset), "zoo defaults": zoo_rows(model, dataset)}
        if model == args.models[0] and data == args.data[0]:
            runs.update({label: zoo_rows(model, dataset, **options) for label, options in ABLATIONS.items()})
            if args.compile:
                runs["zoo: + compile"] = zoo_rows(model, dataset, compile=True)
        target = min(max(r["val_top1"] for r in runs["seed loop"]), max(r["val_top1"] for r in runs["zoo defaults"]))
        rows = [summary(loop, model, data, history, target) for loop, history in runs.items()]
        seed_speed = rows[0]["images_per_s"]
        for row in rows:
            row["vs_seed"] = row["images_per_s"] / seed_speed
        table.extend(rows)
def cpu_class() -> dict:
    """What this CPU offers and what zoo chose (a figure means little without its CPU class)."""
    import os
    from pathlib import Path

    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = set()
    features = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16") if f in flags]
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "")
    return {"cpu_features": features, "onednn_max_cpu_isa": cap or None,
            "class": (f"emulated {cap} (oneDNN capped)" if cap else
                      "AVX512-BF16" if "avx512_bf16" in flags else "AVX2" if "avx2" in flags else "other"),
            "zoo_precision": "bf16" if cpu_has_native_bf16() else "fp32"}


for row in table:
    row["cpu_class"] = cpu_class()["class"]
report("cpu_train", table, {"size": args.size, "epochs": args.epochs, "batch_size": args.batch_size,
                            "bf16_native": cpu_has_native_bf16(), **cpu_class()}, smoke=args.smoke)
