"""zoo.export(): checkpoint -> ONNX / TorchScript files, metadata and a parity report."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ExportError
from zoo.exporter.backends import BACKENDS, DEFAULT_OPSET, FILE_NAMES, FORMATS

log = logging.getLogger("zoo.export")


@dataclass
class ExportResult:
    output_dir: Path
    files: dict[str, Path]
    parity: dict[str, dict[str, Any]]

    @property
    def passed(self) -> bool:
        return all(p["passed"] for p in self.parity.values())


def export(
    run: str | Path | None = None,
    checkpoint: str | Path | None = None,
    format: str = "onnx",  # noqa: A002 - mirrors the CLI option
    output: str | Path | None = None,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    images: str | Path | None = None,
    atol: float = 1e-4,
    max_images: int = 32,
    check: bool = True,
    model: Any = None,
) -> ExportResult:
    """Export a run's best checkpoint (default runs/latest) and check it against eager PyTorch.

    Raises ExportError when a format diverges beyond ``atol`` or changes a top-1 label; the files
    stay for inspection and model.json marks them failed. ``model`` is the module to load the
    checkpoint into when it is not a registered model (one trained with ``zoo.fit``).
    """
    from zoo.exporter.loading import load_checkpoint
    from zoo.files import atomic_write_text, check_writable
    from zoo.exporter.parity import RUNNERS, load_eval_images, run_parity
    from zoo.hub import file_digest

    formats = list(FORMATS) if format == "all" else [format]
    if any(f not in FORMATS for f in formats):
        raise ExportError(f"unknown export format {format!r}; use onnx, torchscript or all")
    loaded = load_checkpoint(run, checkpoint, model)
    meta = loaded.meta
    name = loaded.run.name if loaded.run else loaded.checkpoint.stem
    out = Path(output) if output else Path("exports") / name
    check_writable(out, ExportError)

    model = loaded.model.float().eval()
    size = meta.preprocessing.input_size
    example = torch.randn(2, 3, size, size)
    files, exporters = {}, {}
    for fmt in formats:
        path = out / FILE_NAMES[fmt]
        log.info("exporting %s to %s", meta.model, path)
        exporters[fmt] = BACKENDS[fmt](model, path, example, meta, opset=opset, dynamic_batch=dynamic_batch)
        files[fmt] = path

    parity: dict[str, dict[str, Any]] = {}
    if check:
        inputs, source = load_eval_images(meta, loaded.run, images, max_images)
        batch_sizes = (1, 8, 3) if dynamic_batch else (example.shape[0],)
        if not dynamic_batch:
            inputs = inputs[: (len(inputs) // 2) * 2] if len(inputs) >= 2 else inputs.repeat(2, 1, 1, 1)
        parity = run_parity(model, inputs, {f: RUNNERS[f](files[f]) for f in formats}, atol, batch_sizes)
        for report in parity.values():
            report["source"] = source
        for fmt in formats:
            parity[fmt].update(exporters[fmt])
        atomic_write_text(out / "parity.json", json.dumps(parity, indent=2))

    sidecar = {
        **meta.to_dict(),
        "checkpoint": str(loaded.checkpoint),
        "files": {fmt: {"path": p.name, "sha256": file_digest(p), "bytes": p.stat().st_size,
                        **exporters[fmt], "parity_passed": parity.get(fmt, {}).get("passed")}
                  for fmt, p in files.items()},
    }
    atomic_write_text(out / "model.json", json.dumps(sidecar, indent=2))
    result = ExportResult(out, files, parity)
    for fmt, report in parity.items():
        log.info("parity %-11s %s  max |diff| %.2e  max rel %.2e  top-1 agreement %.3f  (%d images, batch %s)",
                 fmt, "PASS" if report["passed"] else "FAIL", report["max_abs_diff"], report["max_rel_diff"],
                 report["top1_agreement"], report["images"], report["batch_sizes"])
    failed = [f for f, r in parity.items() if not r["passed"]]
    if failed:
        worst = parity[failed[0]]
        raise ExportError(
            f"{failed[0]} export diverged from PyTorch: max |diff| {worst['max_abs_diff']:.2e} "
            f"(limit {atol:g}), top-1 agreement {worst['top1_agreement']:.3f}; files kept in {out} for inspection"
        )
    return result
