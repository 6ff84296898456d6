"""Make throw-away plugin distributions on sys.path (a dist-info folder with entry_points.txt)."""

from __future__ import annotations

import textwrap
from pathlib import Path


def make_plugin(site: Path, dist: str, module_source: str, entry_points: dict[str, str]) -> None:
    """Write module <dist>_mod.py and its dist-info; entry_points maps group -> 'name = value'.

    The caller puts ``site`` on sys.path (monkeypatch.syspath_prepend, undone after the test)."""
    site.mkdir(parents=True, exist_ok=True)
    module = dist.replace("-", "_") + "_mod"
    (site / f"{module}.py").write_text(textwrap.dedent(module_source))
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = []
    for group, spec in entry_points.items():
        lines += [f"[{group}]", spec.replace("MODULE", module), ""]
    (info / "entry_points.txt").write_text("\n".join(lines))
