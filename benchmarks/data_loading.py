"""Images/s of the training input pipeline, three ways, with the 'light' augmentation at --size:

1. PIL decode of every file each epoch, v2 transforms in DataLoader workers (the seeds' scripts);
2. the decode-once uint8 cache, v2 transforms per image in workers;
3. the same cache on disk (memory-mapped .npy, as a later run finds it), v2 in workers;
4. the decode-once cache held on the device, whole batches augmented there (BatchAugment).

Each figure is a full epoch over --max-images training images, batches delivered on the device.

    python benchmarks/data_loading.py [--datasets food20 hymenoptera] [--size 224] [--workers N] [--smoke]
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch

import zoo
from zoo.data.batch_augment import BatchAugment
from zoo.data.dataset import FileImages
from zoo.data.decoded_cache import CacheSpec, decode_once, decode_once_to_disk
from zoo.data.loader import TransformedImages, default_workers, make_loader
from zoo.data.pipeline import CachedBatches, LoaderBatches
from zoo.data.transforms import train_transform
from _table import SHARED_DATA, report

parser = argparse.ArgumentParser()
parser.add_argument("--datasets", nargs="+", default=["food20", "hymenoptera"])
parser.add_argument("--size", type=int, default=224)
parser.add_argument("--workers", type=int, default=None, help="default: what zoo finetune would use here")
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--max-images", type=int, default=2000)
parser.add_argument("--data-root", default=SHARED_DATA, help="folder holding named datasets")
parser.add_argument("--smoke", action="store_true", help="a few synthetic images, to check the script runs")
args = parser.parse_args()
if args.smoke:
    args.datasets, args.size, args.max_images, args.workers = ["example_shapes"], 32, 64, 0

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
workers = args.workers if args.workers is not None else default_workers(device)
pre = zoo.model_info("resnet50").preprocessing(args.size)


def images_per_second(batches) -> float:
    for _ in zip(range(2), batches):  # warm-up: worker start, first transfers
        pass
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    n = 0
    for images, _ in batches:
        n += len(images)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


rows = []
for name in args.datasets:
    dataset = zoo.create_dataset(name, data_root=args.data_root)
    source = dataset.train.subset(range(min(args.max_images, len(dataset.train))))
    generator = torch.Generator().manual_seed(0)

    def through_workers(src):
        dataset_view = TransformedImages(src, train_transform(pre, "light"))
        return LoaderBatches(make_loader(dataset_view, args.batch_size, True, workers, device, generator), device)

    t0 = time.perf_counter()
    cached = decode_once(source, CacheSpec.for_training(pre))
    build_s = time.perf_counter() - t0
    on_device = CachedBatches.from_images(cached, BatchAugment(pre, "light"), args.batch_size, device, True,
                                          generator=generator)
    common = {"dataset": name, "images": len(source), "device": str(device), "workers": workers}
    rows.append({**common, "pipeline": "PIL decode each epoch, v2 in workers",
                 "images_per_s": images_per_second(through_workers(source)), "one_time_s": 0.0})
    rows.append({**common, "pipeline": "decode-once cache, v2 in workers",
                 "images_per_s": images_per_second(through_workers(cached)), "one_time_s": build_s})
    if isinstance(source, FileImages):  # arrays need no disk cache
        with tempfile.TemporaryDirectory() as folder:
            decode_once_to_disk(source, CacheSpec.for_training(pre), folder=Path(folder))
            t0 = time.perf_counter()
            on_disk = decode_once_to_disk(source, CacheSpec.for_training(pre), folder=Path(folder))  # a later run's view
            reopen_s = time.perf_counter() - t0
            rows.append({**common, "pipeline": "disk cache reopened, v2 in workers",
                         "images_per_s": images_per_second(through_workers(on_disk)), "one_time_s": reopen_s})
    rows.append({**common, "pipeline": "decode-once cache, batches augmented on device",
                 "images_per_s": images_per_second(on_device), "one_time_s": build_s})
report("data_loading", rows, {"size": args.size, "batch_size": args.batch_size, "augment": "light"}, smoke=args.smoke)
