"""Print a table and write it as JSON under benchmarks/results/ (or $ZOO_BENCH_RESULTS)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

# named datasets: $ZOO_DATA_ROOT, else the shared data folder beside the repository
SHARED_DATA = os.environ.get("ZOO_DATA_ROOT", str(Path(__file__).resolve().parents[2] / "shared" / "data"))


def report(name: str, rows: list[dict], extra: dict | None = None, smoke: bool = False) -> Path:
    """Smoke runs write <name>-smoke.json, leaving the real figures alone."""
    columns = list(rows[0]) if rows else []
    widths = {c: max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(_fmt(r[c]).ljust(widths[c]) for c in columns))
    folder = Path(os.environ.get("ZOO_BENCH_RESULTS", Path(__file__).parent / "results"))
    out = folder / f"{name}{'-smoke' if smoke else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    import torch

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    out.write_text(json.dumps({"machine": platform.node(), "cpu_count": os.cpu_count(), "gpu": gpu,
                               "torch": torch.__version__, "rows": rows, **(extra or {})}, indent=2))
    print(f"wrote {out}")
    return out


def progress(row: dict) -> None:
    """One measured row as soon as it is measured: a stage killed by its time limit still shows what it got."""
    print("measured: " + "  ".join(f"{key}={_fmt(value)}" for key, value in row.items()), flush=True)


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
