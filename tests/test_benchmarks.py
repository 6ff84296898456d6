"""Every benchmark script runs end to end in its --smoke form and writes a table of real figures."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, shared_data

# script: (a figure every row must have above zero, rows expected, shared data it reads)
BENCHMARKS = {
    "cli_startup": ("median_s", 5, None),
    "cpu_train": ("images_per_s", 5, "hymenoptera"),  # seed, zoo, three ablations
    "data_loading": ("images_per_s", 3, None),  # the smoke set is in memory: no disk-cache row
    # eager + 7 formats (6 without the openvino plugin) at batch 1 and 8
    "export_latency": ("ms", 16 if importlib.util.find_spec("zoo_openvino") else 14, None),
    "quality": ("wall_s", 8, "food20"),
    "frozen_backbone": ("epoch_s", 6, None),
    "recipes": ("train_s", 3, "hymenoptera"),
    "train_throughput": ("images_per_s", 3, None),
    "real_data_throughput": ("images_per_s", 2, "hymenoptera"),
    "cifar10_time_to_accuracy": ("epoch_s", 1, "cifar10"),
    # zoo serve, --max-batch 1 and a naive server at 2 concurrencies, bare runtime at batch 1 and the batch formed
    "serve_load": ("images_per_s", 8, "hymenoptera"),
    "imbalance": ("train_images", 4, "food20"),
    "multilabel": ("map", 2, "food20-multilabel"),  # threshold 0.5 and tuned
    "scale": ("check_cold_s", 2, None),  # 200 and 400 files
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_benchmark_smoke_run_writes_its_table(name, tmp_path):
    figure, rows_expected, data = BENCHMARKS[name]
    if data:
        shared_data(data)
    env = {**os.environ, "ZOO_BENCH_RESULTS": str(tmp_path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, f"{name}.py", "--smoke"], cwd=ROOT / "benchmarks", env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / f"{name}-smoke.json").read_text())
    rows = result["rows"]
    assert len(rows) == rows_expected
    assert all(row[figure] > 0 for row in rows), rows
    header = next(line for line in done.stdout.splitlines()  # the printed table, not a row's progress line
                  if figure in line and not line.startswith("measured:"))
    assert header.split()[0] == next(iter(rows[0]))
