"""Start-up as data grows: `zoo data check` (cold and remembered) and time to the first training step
(cold and remembered), and the memory a run holds per file, at 1k to 300k files; growth laws fitted.

    python benchmarks/scale.py [--sizes 1000 10000 100000 300000] [--root /tmp/zoo-scale] [--smoke]

Data: an imagefolder (train/ and val/, 10 classes, 80/20) of 32x32 JPEGs, made once under --root.
Each measurement runs in a fresh process; "cold" has an empty zoo cache (no scan record, no decoded
cache), "remembered" runs again with the cache the cold run left. The operating system's page cache
is warm in both (the files were just written or read): what is measured is zoo's own work. Time to
first step is from the start of zoo.finetune until the run is set up and its first step begins (the
on_fit_start callback); RSS is the process's peak resident memory then, and "per file" is the slope
of a straight line through the sizes, less the decoded cache's own bytes (32x32x3 per image). The
fitted laws (seconds = a + b * files) are projected to ImageNet's 1.28 M files.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from _table import progress, report

parser = argparse.ArgumentParser()
parser.add_argument("--sizes", nargs="+", type=int, default=[1000, 10000, 100000, 300000])
parser.add_argument("--root", default="/tmp/zoo-scale")
parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the script runs")
args = parser.parse_args()
if args.smoke:
    args.sizes = [200, 400]
CLASSES, SIDE, PROJECT = 10, 32, 1_281_167
ROOT = Path(__file__).resolve().parents[1]


def _write(job):
    folder, start, count = job
    from PIL import Image

    rng = np.random.default_rng(start)
    for i in range(start, start + count):
        split = "val" if (i // CLASSES) % 5 == 0 else "train"
        target = Path(folder) / split / f"class{i % CLASSES}" / f"{i:07d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
        Image.fromarray(base).save(target, quality=90)


def make_data(size: int) -> Path:
    folder = Path(args.root) / f"files-{size}"
    done = folder / ".complete"
    if not done.exists():
        chunk = 5000
        with ProcessPoolExecutor() as pool:
            list(pool.map(_write, [(str(folder), s, min(chunk, size - s)) for s in range(0, size, chunk)]))
        done.write_text("")
    return folder


FIRST_STEP = """
import json, resource, sys, time
started = time.perf_counter()
import zoo
class FirstStep:
    def on_fit_start(self, plan):
        print(json.dumps({"seconds": time.perf_counter() - started,
                          "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)
        raise SystemExit(0)
zoo.finetune(model="example_tinynet", data=sys.argv[1], epochs=1, image_size=32, workers=0, quiet=True,
             output=sys.argv[2], overwrite=True, callbacks=[FirstStep()])
"""


def timed(command: list[str], cache: Path) -> tuple[float, str]:
    env = {**os.environ, "ZOO_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode:
        sys.exit(f"{' '.join(command[:4])} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - started, done.stdout


rows = []
with tempfile.TemporaryDirectory() as tmp:
    for size in args.sizes:
        data = make_data(size)
        row = {"files": size}
        for step in ("check", "first_step"):
            cache = Path(tmp) / f"cache-{size}-{step}"
            for when in ("cold", "remembered"):
                if step == "check":
                    seconds, _ = timed([sys.executable, "-m", "zoo", "data", "check", str(data)], cache)
                    row[f"check_{when}_s"] = round(seconds, 2)
                else:
                    _, out = timed([sys.executable, "-c", FIRST_STEP, str(data), f"{tmp}/run"], cache)
                    measured = json.loads(out.strip().splitlines()[-1])
                    row[f"first_step_{when}_s"] = round(measured["seconds"], 2)
                    row[f"rss_{when}_mb"] = round(measured["rss_mb"], 1)
        rows.append(row)
        progress(row)


def law(key: str) -> dict:
    files = np.array([r["files"] for r in rows], dtype=float)
    values = np.array([r[key] for r in rows], dtype=float)
    slope, intercept = np.polyfit(files, values, 1) if len(rows) > 1 else (values[0] / files[0], 0.0)
    return {"a": round(float(intercept), 3), "b_per_1k": round(float(slope) * 1000, 4),
            "projected_1_28M": round(float(intercept + slope * PROJECT), 1)}


laws = {key: law(key) for key in rows[0] if key != "files"}
# the decoded cache's bytes per file: train squares at the crop's margin, evaluation at the input size (4:1)
from zoo.data.decoded_cache import CacheSpec  # noqa: E402
from zoo.models.api import model_info  # noqa: E402

pre = model_info("example_tinynet").preprocessing(SIDE)
cache_kb = (0.8 * CacheSpec.for_training(pre).side ** 2 + 0.2 * CacheSpec.for_evaluation(pre).side ** 2) * 3 / 1024
rss_per_file_kb = {when: round(laws[f"rss_{when}_mb"]["b_per_1k"] * 1024 / 1000, 3) for when in ("cold", "remembered")}
report("scale", rows, {"laws": laws, "rss_per_file_kb": rss_per_file_kb, "cache_kb_per_file": round(cache_kb, 2),
                       "projected_files": PROJECT}, smoke=args.smoke)
print("growth laws (value = a + b * files):")
for key, fitted in laws.items():
    print(f"  {key:<24} a {fitted['a']:>8}  b {fitted['b_per_1k']:>8} per 1k files  -> {fitted['projected_1_28M']:>9} "
          f"at 1.28 M files")
print(f"RSS per file (slope): {rss_per_file_kb} KB, of which the decoded cache is {cache_kb:.2f} KB")
