"""How long `zoo --help`, `zoo list`, `zoo list 'tv:*'` and `zoo info tv:resnet50` take (targets on the
2-core box: --help under 0.3 s; the namespace listing and info under 1 s once remembered, the first
call of each warms zoo's listing cache and is not timed).

    python benchmarks/cli_startup.py [--repeat 5] [--smoke]
"""

import argparse
import statistics
import subprocess
import sys
import time

from _table import report

parser = argparse.ArgumentParser()
parser.add_argument("--repeat", type=int, default=5)
parser.add_argument("--smoke", action="store_true", help="one repeat, to check the script runs")
args = parser.parse_args()
if args.smoke:
    args.repeat = 1
rows = []
for command in (["--help"], ["list"], ["plugins"], ["list", "tv:*"], ["info", "tv:resnet50"]):
    subprocess.run([sys.executable, "-m", "zoo", *command], check=True, capture_output=True)  # warm the caches
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "zoo", *command], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    rows.append({"command": "zoo " + " ".join(command), "median_s": statistics.median(times), "min_s": min(times)})
report("cli_startup", rows, smoke=args.smoke)
