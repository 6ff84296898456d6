"""CPU latency of torch eager vs TorchScript vs onnxruntime, batch 1 and 8, side by side in one run.

    python benchmarks/export_latency.py [--models resnet18 resnet50] [--size 224] [--repeat 20] [--smoke]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

import zoo
from zoo.exporter.backends import export_onnx, export_torchscript
from zoo.exporter.parity import onnx_runner, torchscript_runner
from zoo.runs import CheckpointMeta
from _table import report

parser = argparse.ArgumentParser()
parser.add_argument("--models", nargs="+", default=["resnet18", "resnet50"])
parser.add_argument("--size", type=int, default=224)
parser.add_argument("--repeat", type=int, default=20)
parser.add_argument("--smoke", action="store_true", help="tiny sizes, to keep the script from rotting")
args = parser.parse_args()
if args.smoke:
    args.models, args.size, args.repeat = ["resnet18"], 32, 2


def timed(fn, batch, repeat):
    fn(batch)  # warm-up
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(batch)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


rows = []
for name in args.models:
    model = zoo.create_model(name, num_classes=1000).eval()
    meta = CheckpointMeta(model=name, num_classes=1000, classes=[str(i) for i in range(1000)],
                          preprocessing=zoo.model_info(name).preprocessing(args.size))
    with tempfile.TemporaryDirectory() as tmp:
        example = torch.randn(2, 3, args.size, args.size)
        export_onnx(model, Path(tmp) / "m.onnx", example, meta)
        export_torchscript(model, Path(tmp) / "m.pt", example, meta)

        def eager(batch):
            with torch.no_grad():
                return model(batch)

        runners = {"eager": eager, "torchscript": torchscript_runner(Path(tmp) / "m.pt"),
                   "onnxruntime": onnx_runner(Path(tmp) / "m.onnx")}
        for bs in (1, 8):
            batch = torch.randn(bs, 3, args.size, args.size)
            base = None
            for runtime, fn in runners.items():
                ms = timed(fn, batch, args.repeat)
                base = base or ms
                rows.append({"model": name, "batch": bs, "runtime": runtime, "ms": ms, "speedup_vs_eager": base / ms})
report("export_latency", rows, {"size": args.size, "threads": torch.get_num_threads()}, smoke=args.smoke)
