"""Print a table and write it as JSON under benchmarks/results/."""

from __future__ import annotations

import json
import platform
from pathlib import Path


def report(name: str, rows: list[dict], extra: dict | None = None) -> Path:
    columns = list(rows[0]) if rows else []
    widths = {c: max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(_fmt(r[c]).ljust(widths[c]) for c in columns))
    out = Path(__file__).parent / "results" / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    import torch

    out.write_text(json.dumps({"machine": platform.node(), "cpu_count": __import__("os").cpu_count(),
                               "torch": torch.__version__, "rows": rows, **(extra or {})}, indent=2))
    print(f"wrote {out}")
    return out


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
