"""Images/s of the training input pipeline: PIL decode every epoch vs the decode-once uint8 cache.

    python benchmarks/data_loading.py [--datasets food20 hymenoptera] [--size 224] [--workers 2] [--smoke]
"""

import argparse
import time

import torch

import zoo
from zoo.data.loader import TransformedImages, decode_once, make_loader
from zoo.data.transforms import train_transform
from _table import report

parser = argparse.ArgumentParser()
parser.add_argument("--datasets", nargs="+", default=["food20", "hymenoptera"])
parser.add_argument("--size", type=int, default=224)
parser.add_argument("--workers", type=int, default=2)
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--max-images", type=int, default=2000)
parser.add_argument("--smoke", action="store_true")
args = parser.parse_args()
if args.smoke:
    args.datasets, args.size, args.max_images, args.workers = ["example_shapes"], 32, 64, 0

pre = zoo.model_info("resnet50").preprocessing(args.size)
rows = []
for name in args.datasets:
    dataset = zoo.create_dataset(name)
    source = dataset.train.subset(range(min(args.max_images, len(dataset.train))))
    transform = train_transform(pre, "light")

    def epoch(src):
        loader = make_loader(TransformedImages(src, transform), args.batch_size, True, args.workers, torch.device("cpu"))
        t0 = time.perf_counter()
        n = sum(len(labels) for _, labels in loader)
        return n / (time.perf_counter() - t0)

    plain = epoch(source)
    t0 = time.perf_counter()
    cached = decode_once(source, pre["resize_size"])
    build = time.perf_counter() - t0
    rows.append({"dataset": name, "images": len(source), "pipeline": "PIL decode each epoch", "images_per_s": plain,
                 "one_time_s": 0.0})
    rows.append({"dataset": name, "images": len(source), "pipeline": "decode-once cache", "images_per_s": epoch(cached),
                 "one_time_s": build})
report("data_loading", rows, {"size": args.size, "workers": args.workers})
