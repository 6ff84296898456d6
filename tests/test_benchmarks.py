"""Every benchmark script runs end to end in its --smoke form and writes a table of real figures."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

BENCHMARKS = {
    "cli_startup": ("median_s", 3),
    "data_loading": ("images_per_s", 3),
    "export_latency": ("ms", 6),
    "frozen_backbone": ("epoch_s", 4),
    "recipes": ("train_s", 3),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_benchmark_smoke_run_writes_its_table(name, tmp_path):
    figure, rows_expected = BENCHMARKS[name]
    env = {**os.environ, "ZOO_BENCH_RESULTS": str(tmp_path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, f"{name}.py", "--smoke"], cwd=ROOT / "benchmarks", env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / f"{name}-smoke.json").read_text())
    rows = result["rows"]
    assert rows and (rows_expected is None or len(rows) == rows_expected)
    assert all(row[figure] > 0 for row in rows), rows
    assert figure in done.stdout.splitlines()[0]  # the printed table's header
