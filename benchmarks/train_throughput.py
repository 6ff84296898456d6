"""Images/s of full training steps, data already on the device, three loops side by side in one run:

(a) seed   the seeds' style: fp32, NCHW, plain SGD, loss.item() every step;
(b) tuned  a bare hand-tuned loop: bf16 autocast, channels_last, fused SGD, torch.compile, no host sync;
(c) zoo    zoo.finetune with its defaults (compile forced on, as its default does for long CUDA runs) on
           a synthetic in-memory dataset, so its cached batches live on the device; the last epoch's
           training images/s from metrics.jsonl; compile warm-up = first epoch time - steady epoch time.

    python benchmarks/train_throughput.py [--models resnet50 resnet152] [--batch-size 256] [--smoke]
"""

import argparse
import time

import torch
from torch import nn

import zoo
from _engine_runs import engine_epochs, register_synthetic
from _table import progress, report

parser = argparse.ArgumentParser()
parser.add_argument("--models", nargs="+", default=["resnet18", "resnet50", "resnet152"])
parser.add_argument("--size", type=int, default=224)
parser.add_argument("--batch-size", type=int, default=256)
parser.add_argument("--steps", type=int, default=30, help="timed steps per loop (after warm-up)")
parser.add_argument("--smoke", action="store_true", help="tiny sizes on whatever device there is")
parser.add_argument("--engine-only", action="store_true",
                    help="only zoo's engine (when the seed and hand-tuned loops were measured before on this GPU)")
args = parser.parse_args()
if args.smoke:
    args.models, args.size, args.batch_size, args.steps = ["resnet18"], 32, 8, 3

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
compile_ok = device.type == "cuda"  # CPU compile needs a C++ toolchain and minutes; not what this measures
NUM_CLASSES = 100


def synchronize() -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed_steps(step, batches: int, warmup: int) -> float:
    for _ in range(warmup):
        step()
    synchronize()
    t0 = time.perf_counter()
    for _ in range(batches):
        step()
    synchronize()
    return batches * args.batch_size / (time.perf_counter() - t0)


def seed_loop(name: str) -> float:
    model = zoo.create_model(name, num_classes=NUM_CLASSES).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(args.batch_size, 3, args.size, args.size, device=device)
    y = torch.randint(0, NUM_CLASSES, (args.batch_size,), device=device)
    losses = []

    def step():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())  # the seeds' running_loss += loss.item(): a host sync per step

    return timed_steps(step, args.steps, warmup=3)


def tuned_loop(name: str) -> float:
    model = zoo.create_model(name, num_classes=NUM_CLASSES).to(device, memory_format=torch.channels_last).train()
    fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, **fast)
    compiled = torch.compile(model) if compile_ok else model
    x = torch.randn(args.batch_size, 3, args.size, args.size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, NUM_CLASSES, (args.batch_size,), device=device)
    dtype = torch.bfloat16

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype):
            loss = nn.functional.cross_entropy(compiled(x), y)
        loss.backward()
        optimizer.step()

    return timed_steps(step, args.steps, warmup=10 if compile_ok else 3)


def zoo_engine(name: str) -> tuple[float, float, float, int]:
    side = zoo.model_info(name).preprocessing(args.size).resize_size
    data = register_synthetic(f"synthetic-{name}", args.batch_size * (args.steps + 1), side, NUM_CLASSES,
                              args.batch_size)
    rows = engine_epochs(name, data, image_size=args.size, epochs=3, batch_size=args.batch_size, optimizer="sgd",
                         augment="none", compile=compile_ok)
    warmup = rows[0]["epoch_time_s"] - rows[-1]["epoch_time_s"]
    graphs = [r.get("compiled_graphs", 0) for r in rows]
    recompiles = graphs[-1] - graphs[0]  # graphs made after the first epoch: recompilations
    return rows[-1]["images_per_s"], warmup, rows[-1]["peak_gpu_mem_mb"], recompiles


rows = []
for name in args.models:
    common = {"model": name, "batch": args.batch_size, "size": args.size, "device": str(device)}
    if args.engine_only:
        engine, warmup, peak, recompiles = zoo_engine(name)
        progress({"model": name, "loop": "zoo engine", "images_per_s": engine, "compile_warmup_s": warmup})
        rows.append({**common, "loop": "zoo engine defaults", "images_per_s": engine, "compile_warmup_s": warmup,
                     "peak_mem_mb": peak, "recompiles": recompiles})
        continue
    seed = seed_loop(name)
    progress({"model": name, "loop": "seed", "images_per_s": seed})
    tuned = tuned_loop(name)
    progress({"model": name, "loop": "hand-tuned", "images_per_s": tuned})
    engine, warmup, peak, recompiles = zoo_engine(name)
    rows.append({**common, "loop": "seed (fp32, NCHW, item per step)", "images_per_s": seed, "vs_tuned": seed / tuned,
                 "compile_warmup_s": 0.0, "peak_mem_mb": 0.0, "recompiles": 0})
    rows.append({**common, "loop": "hand-tuned (bf16, channels_last, fused, compile)", "images_per_s": tuned,
                 "vs_tuned": 1.0, "compile_warmup_s": 0.0, "peak_mem_mb": 0.0, "recompiles": 0})
    rows.append({**common, "loop": "zoo engine defaults", "images_per_s": engine, "vs_tuned": engine / tuned,
                 "compile_warmup_s": warmup, "peak_mem_mb": peak, "recompiles": recompiles})
    print(f"{name}: zoo / seed = {engine / seed:.2f}x, zoo / tuned = {engine / tuned:.2f}x")
report("train_throughput", rows, {"torch": torch.__version__, "compile": compile_ok}, smoke=args.smoke)
