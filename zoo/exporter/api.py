"""zoo.export(): a checkpoint -> files in the chosen formats, metadata, and a parity report for each.

Formats come from the registry (zoo/exporter/formats): onnx, onnx-int8, pt2, torchscript and any a
plugin adds. Each file is written atomically and then proven against eager fp32 PyTorch on real
images (zoo/exporter/parity.py); a file that fails its gate stays for inspection, marked failed in
model.json, and the export exits 1 naming the format.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ExportError
from zoo.exporter.formats import DEFAULT_OPSET, ExportOptions, format_names, get_format

log = logging.getLogger("zoo.export")


@dataclass
class ExportResult:
    output_dir: Path
    files: dict[str, Path]
    parity: dict[str, dict[str, Any]]
    seconds: dict[str, float] = field(default_factory=dict)  # export + parity per format

    @property
    def passed(self) -> bool:
        return all(p["passed"] for p in self.parity.values())


def list_formats() -> list[dict[str, str]]:
    """Every registered format: name, file, description, and whether it can run here (or what to install)."""
    rows = []
    for name in format_names():
        try:
            fmt = get_format(name)
        except ExportError as exc:
            rows.append({"name": name, "file": "?", "description": "", "status": str(exc)})
            continue
        problem = fmt.available()
        rows.append({"name": name, "file": fmt.file_name, "description": fmt.description,
                     "status": "available" if problem is None else problem})
    return rows


def export(
    run: str | Path | None = None,
    checkpoint: str | Path | None = None,
    format: str | list[str] = "onnx",  # noqa: A002 - mirrors the CLI option
    output: str | Path | None = None,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    images: str | Path | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    max_images: int = 32,
    check: bool = True,
    model: Any = None,
    batch_size: int = 1,
    embed_preprocessing: bool = False,
    calibration_images: int = 200,
    reference_device: str = "cpu",
    strict: bool = True,
) -> ExportResult:
    """Export a run's best checkpoint (default runs/latest) and check each file against eager PyTorch.

    ``format`` is a registered name, a list of them, or "all" (every format available here).
    ``dynamic_batch=False`` fixes the batch at ``batch_size``. ``embed_preprocessing`` makes ONNX files
    that take decoded uint8 images (N, H, W, 3) of any size. ``model`` is the module to load the
    checkpoint into when it is not a registered model (one trained with ``zoo.fit``). The eager
    reference runs on ``reference_device`` (fp32, TF32 off). With ``strict`` (the default) it raises
    ExportError when a file fails its parity gate (else ``result.passed`` says so); the files stay and
    model.json marks them failed.
    """
    from zoo.exporter.loading import load_checkpoint
    from zoo.exporter.metadata import export_metadata, relative_checkpoint
    from zoo.exporter.parity import calibration_images as calibration, check as parity_check, load_eval_images
    from zoo.files import atomic_write_json, check_writable
    from zoo.hub import file_digest

    formats = _chosen(format)
    if batch_size < 1:
        raise ExportError(f"--batch-size {batch_size} must be at least 1")
    loaded = load_checkpoint(run, checkpoint, model)
    meta, net = loaded.meta, loaded.model.float().eval()
    name = loaded.run.name if loaded.run else loaded.checkpoint.stem
    out = Path(output) if output else Path("exports") / name
    check_writable(out, ExportError)
    size = meta.preprocessing.input_size
    example = torch.randn(2 if dynamic_batch else batch_size, 3, size, size)
    options = ExportOptions(opset=opset, dynamic_batch=dynamic_batch, batch_size=batch_size,
                            embed_preprocessing=embed_preprocessing)
    eval_images = load_eval_images(meta, loaded.run, images, max_images) if check else None
    files, details, parity, seconds = {}, {}, {}, {}
    for fmt in formats:
        started = time.perf_counter()
        fmt_options = options
        if fmt.gate == "top1":  # int8: calibrated on training images
            fmt_options = ExportOptions(**{**options.__dict__, "calibration": calibration(
                meta, loaded.run, images, calibration_images, decoded=embed_preprocessing)})
        path = fmt.path_in(out, options)
        log.info("exporting %s as %s to %s", meta.model, fmt.name, path)
        details[fmt.name] = fmt.export(net, path, example, meta, fmt_options)
        files[fmt.name] = path
        if check:
            parity[fmt.name] = {**parity_check(net, eval_images, fmt.load(path), fmt.gate, atol, rtol,
                                               device=reference_device),
                                **details[fmt.name]}
            _log(fmt.name, parity[fmt.name])
        seconds[fmt.name] = time.perf_counter() - started
    if check:
        atomic_write_json(out / "parity.json", parity)
    atomic_write_json(out / "model.json", {
        **export_metadata(meta, embed_preprocessing),
        "checkpoint": relative_checkpoint(loaded.checkpoint, loaded.run.name if loaded.run else None),
        "files": {fmt: {"path": p.name, "sha256": file_digest(p), "bytes": p.stat().st_size, **details[fmt],
                        "parity_passed": parity.get(fmt, {}).get("passed")} for fmt, p in files.items()},
    })
    failed = [f for f, r in parity.items() if not r["passed"]]
    if failed and strict:
        worst = parity[failed[0]]
        raise ExportError(
            f"{failed[0]} export diverged from PyTorch: max |diff| {worst['max_abs_diff']:.2e} (limit "
            f"{worst['tolerance']:.2e}), top-1 agreement {worst['top1_agreement']:.3f} ({worst['gate']}); "
            f"files kept in {out} for inspection"
        )
    return ExportResult(out, files, parity, seconds)


def _chosen(format: str | list[str]):  # noqa: A002
    names = format if isinstance(format, list) else [f.strip() for f in str(format).split(",") if f.strip()]
    if names == ["all"]:
        chosen = [get_format(n) for n in format_names()]
        skipped = [(f.name, f.available()) for f in chosen if f.available() is not None]
        for skipped_name, reason in skipped:
            log.info("skipping %s: %s", skipped_name, reason)
        return [f for f in chosen if f.available() is None]
    chosen = []
    for name in names:
        fmt = get_format(name)
        problem = fmt.available()
        if problem is not None:
            raise ExportError(problem)
        chosen.append(fmt)
    if not chosen:
        raise ExportError(f"no export format given; use one of {', '.join(format_names())} or all")
    return chosen


def _log(name: str, report: dict[str, Any]) -> None:
    log.info("parity %-12s %s  max |diff| %.2e (limit %.2e)  max prob diff %.2e  top-1 agreement %.3f  "
             "(%d images, batch %s)", name, "PASS" if report["passed"] else "FAIL", report["max_abs_diff"],
             report["tolerance"], report["max_prob_diff"], report["top1_agreement"], report["images"],
             report["batch_sizes"])
