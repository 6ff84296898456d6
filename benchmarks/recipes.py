"""Runs the seed recipes of examples/ as written, shortened by extra options, and tabulates them.

No published weights can be had on the development machines, so recipes naming DEFAULT run
with ``--weights ""`` (random init); the hand-gesture and flower sets are not in ../shared/data,
so stand-ins in the same layouts are made from food20 (numbered class folders, a .jsonl list).
Each row: the recipe, what was shortened, best val top-1, wall time (process start to exit).

    python benchmarks/recipes.py [--only NAME ...] [--smoke]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _table import SHARED_DATA, report

ROOT = Path(__file__).resolve().parents[1]
parser = argparse.ArgumentParser()
parser.add_argument("--data-root", default=SHARED_DATA, help="folder holding named datasets")
parser.add_argument("--only", nargs="*", help="recipe names to run (default: all)")
parser.add_argument("--smoke", action="store_true", help="one optimizer step per recipe, to check they all run")
args = parser.parse_args()
shared = Path(args.data_root)


def food20_images(classes: int, per_class: int) -> dict[str, list[Path]]:
    """The first ``per_class`` training images of each of food20's first ``classes`` classes, by class name."""
    names = (shared / "food20" / "classes.txt").read_text().split()
    chosen: dict[str, list[Path]] = {name: [] for name in names[:classes]}
    for line in (shared / "food20" / "train.txt").read_text().splitlines():
        rel, label = line.split()
        if int(label) < classes and len(chosen[names[int(label)]]) < per_class:
            chosen[names[int(label)]].append(shared / "food20" / rel)
    return chosen


def numbered_folders(target: Path, classes: int, per_class: int) -> Path:
    """food20 images as 000_<name>/ ... folders (the hand-gesture layout); zoo splits them 80/20."""
    for index, (name, images) in enumerate(food20_images(classes, per_class).items()):
        folder = target / f"{index:03d}_{name}"
        folder.mkdir(parents=True)
        for image in images:
            (folder / image.name).symlink_to(image)
    return target


def jsonl_list(target: Path, classes: int, per_class: int) -> Path:
    """food20 images listed in a .jsonl with label names and no split (the flower recipe's input)."""
    rows = [{"path": str(image), "label": name} for name, images in food20_images(classes, per_class).items()
            for image in images]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return target


with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    recipes = {
        "hymenoptera_full_vs_frozen": ([], ["--weights", "", "--epochs", "5", "--image-size", "112"]),
        "cifar10_resnet18": ([], ["--epochs", "6", "--milestones", "4,5", "--warmup-epochs", "1"]),
        "hand_gestures_resnet50_scratch": ([str(numbered_folders(tmp / "gestures", 14, 100))],
                                           ["--epochs", "4", "--image-size", "64"]),
        "flowers_resnet18_jsonl": ([str(jsonl_list(tmp / "flowers" / "flowers.jsonl", 5, 160))],
                                   ["--epochs", "6", "--image-size", "64", "--warmup-epochs", "1"]),
        "food20_resnet152_frozen": ([], ["--weights", "", "--epochs", "1", "--image-size", "64",
                                         "--max-steps-per-epoch", "40"]),
    }
    if args.only:
        recipes = {k: v for k, v in recipes.items() if k in args.only}
    if args.smoke:
        recipes = {k: (pos, opts + ["--epochs", "1", "--max-steps-per-epoch", "1", "--image-size", "32"])
                   for k, (pos, opts) in recipes.items() if k in ("hymenoptera_full_vs_frozen", "cifar10_resnet18")}
    env = {**os.environ, "ZOO_DATA_ROOT": str(shared), "DATA": "cifar10",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    rows = []
    for name, (positional, shortened) in recipes.items():
        workdir = tmp / "work" / name  # the scripts write runs/... under their working folder
        workdir.mkdir(parents=True)
        t0 = time.perf_counter()
        done = subprocess.run(["bash", str(ROOT / "examples" / f"{name}.sh"), *positional, *shortened, "--quiet"],
                              cwd=workdir, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            sys.exit(f"recipe {name} failed:\n{done.stderr[-3000:]}")
        for final in sorted(f for f in workdir.glob("runs/*/final_metrics.json") if not f.parent.is_symlink()):
            metrics = json.loads(final.read_text())
            epochs = [json.loads(line) for line in (final.parent / "metrics.jsonl").read_text().splitlines()]
            rows.append({"recipe": name, "run": final.parent.name.split("-2")[0],
                         "shortened": " ".join(o if o else '""' for o in shortened),
                         "best_val_top1": metrics["best_val_top1"], "best_epoch": metrics["best_epoch"],
                         "train_s": sum(e["epoch_time_s"] for e in epochs), "script_wall_s": wall})
report("recipes", rows, {"note": "random init; shortened as the 'shortened' column says"}, smoke=args.smoke)
