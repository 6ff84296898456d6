"""The engine on real JPEGs vs its synthetic ceiling: training images/s of zoo.finetune with its defaults.

For each model and dataset, two epochs on the real files (the first decodes the cache and warms
up; the second is reported) and the same on synthetic images already at the cache size; the ratio
is what the input pipeline costs. --pipeline compares the per-image worker path with the default.

    python benchmarks/real_data_throughput.py [--models resnet50 resnet152] [--datasets food20 hymenoptera]
                                              [--pipeline auto workers] [--smoke]
"""

import argparse

import torch

import zoo
from _engine_runs import engine_epochs, register_synthetic
from _table import SHARED_DATA, progress, report

parser = argparse.ArgumentParser()
parser.add_argument("--models", nargs="+", default=["resnet50", "resnet152"])
parser.add_argument("--datasets", nargs="+", default=["food20", "hymenoptera"])
parser.add_argument("--pipeline", nargs="+", default=["auto", "workers"])
parser.add_argument("--size", type=int, default=224)
parser.add_argument("--batch-size", type=int, default=256)
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--data-root", default=SHARED_DATA, help="folder holding named datasets")
parser.add_argument("--smoke", action="store_true", help="tiny sizes on whatever device there is")
args = parser.parse_args()
if args.smoke:
    args.models, args.datasets, args.size, args.batch_size = ["resnet18"], ["hymenoptera"], 32, 32

device = "cuda" if torch.cuda.is_available() else "cpu"
common_options = dict(image_size=args.size, batch_size=args.batch_size, epochs=args.epochs, optimizer="sgd",
                      augment="light", compile=device == "cuda" and not args.smoke)
rows = []
for name in args.models:
    side = zoo.model_info(name).preprocessing(args.size).resize_size
    for data in args.datasets:
        size = len(zoo.create_dataset(data, data_root=args.data_root).train)
        synthetic = register_synthetic(f"synthetic-{name}-{data}", size, side, 20, args.batch_size)
        ceiling = engine_epochs(name, synthetic, **common_options)[-1]["images_per_s"]
        progress({"model": name, "dataset": f"synthetic ({data}'s size)", "images_per_s": ceiling})
        for pipeline in args.pipeline:
            last = engine_epochs(name, data, data_root=args.data_root, pipeline=pipeline, **common_options)[-1]
            rows.append({"model": name, "dataset": data, "images": size, "pipeline": pipeline, "device": device,
                         "images_per_s": last["images_per_s"], "synthetic_images_per_s": ceiling,
                         "vs_synthetic": last["images_per_s"] / ceiling, "data_wait_frac": last["data_wait_frac"]})
            progress(rows[-1])
report("real_data_throughput", rows, {"size": args.size, "batch_size": args.batch_size}, smoke=args.smoke)
