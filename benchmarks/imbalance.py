"""Class imbalance: food20 cut to a 1:20 long tail, macro-F1 of no weighting vs class weights vs a balanced sampler.

Training images per class fall geometrically from --head (class 0) to head/20 (class 19); the
validation split stays balanced (--val per class of food20's test split), so macro-F1 and balanced
accuracy say how the small classes fare. Same model, epochs and seeds for every variant; the figure
is the best val macro-F1 of a run (and the balanced accuracy at that epoch), the mean over --seeds.
Chooses what `--class-weights auto` picks (zoo/engine/defaults.py).

    python benchmarks/imbalance.py [--model resnet18] [--epochs 10] [--seeds 0 1] [--smoke]
"""

import argparse
import tempfile

import numpy as np

import zoo
from zoo.data.dataset import ImageDataset
from _table import SHARED_DATA, progress, report

parser = argparse.ArgumentParser()
parser.add_argument("--model", default="resnet18")
parser.add_argument("--size", type=int, default=64)
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--head", type=int, default=200, help="training images of the largest class")
parser.add_argument("--ratio", type=float, default=20.0, help="largest / smallest class")
parser.add_argument("--val", type=int, default=50, help="validation images per class")
parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
parser.add_argument("--data-root", default=SHARED_DATA)
parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the script runs")
args = parser.parse_args()
if args.smoke:
    args.model, args.size, args.epochs, args.head, args.val, args.seeds = "example_tinynet", 32, 2, 20, 5, [0]

VARIANTS = {
    "none": dict(class_weights="none", sampler="shuffle"),
    "effective-number weights": dict(class_weights="effective", sampler="shuffle"),
    "inverse-frequency weights": dict(class_weights="inverse", sampler="shuffle"),
    "balanced sampler": dict(class_weights="none", sampler="balanced"),
}


def long_tail(dataset: ImageDataset) -> ImageDataset:
    n = dataset.num_classes
    train, val = np.asarray(dataset.train.labels), np.asarray(dataset.eval.labels)
    sizes = [max(1, round(args.head * args.ratio ** (-c / (n - 1)))) for c in range(n)]
    keep_train = np.concatenate([np.flatnonzero(train == c)[:sizes[c]] for c in range(n)])
    keep_val = np.concatenate([np.flatnonzero(val == c)[:args.val] for c in range(n)])
    return ImageDataset(f"{dataset.name}-tail", dataset.classes, {"train": dataset.train.subset(keep_train),
                        "val": dataset.eval.subset(keep_val)}, dataset.layout, dataset.root)


dataset = long_tail(zoo.create_dataset("food20", data_root=args.data_root))
counts = dataset.counts()["train"]
rows = []
for label, options in VARIANTS.items():
    f1s, balanced = [], []
    for seed in args.seeds:
        model = zoo.create_model(args.model, num_classes=dataset.num_classes)
        with tempfile.TemporaryDirectory() as tmp:
            result = zoo.fit(model, dataset, zoo.TrainConfig(epochs=args.epochs, quiet=True, output=f"{tmp}/run",
                                                             seed=seed, select_metric="macro_f1", **options),
                             zoo.model_info(args.model).preprocessing(args.size), model_name=args.model)
        best = max(result.history, key=lambda r: r.val_macro_f1)
        f1s.append(best.val_macro_f1)
        balanced.append(best.val_balanced_accuracy)
    rows.append({"variant": label, "macro_f1": float(np.mean(f1s)), "per_seed": " ".join(f"{f:.3f}" for f in f1s),
                 "balanced_accuracy": float(np.mean(balanced)), "train_images": sum(counts),
                 "largest_smallest": f"{max(counts)}/{min(counts)}"})
    progress(rows[-1])
baseline = rows[0]["macro_f1"]
for row in rows:
    row["vs_none"] = row["macro_f1"] - baseline
report("imbalance", rows, {"model": args.model, "size": args.size, "epochs": args.epochs, "seeds": args.seeds,
                           "class_counts": counts}, smoke=args.smoke)
