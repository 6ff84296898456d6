"""zoo.export(): a checkpoint -> files in the chosen formats, metadata, and a parity report for each.

Formats come from the registry (zoo/exporter/formats): onnx, onnx-int8, pt2, torchscript and any a
plugin adds. Each file is proven against eager fp32 PyTorch on real images (zoo/exporter/parity.py);
a file that fails its gate stays for inspection, marked failed in model.json, and the export exits 1
naming the format. The export is built in a staging folder and swapped in whole (zoo.outputs), under
a lock, so model.json always describes exactly the files beside it, with the SHA-256 of every file
each format wrote; formats exported earlier from the same checkpoint are kept, others go.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ExportError, ZooError
from zoo.exporter.formats import DEFAULT_OPSET, ExportOptions, format_names, get_format
from zoo.exporter.metadata import export_metadata, relative_checkpoint
from zoo.files import atomic_write_json

log = logging.getLogger("zoo.export")
DEFAULT_PARITY_IMAGES = 1000  # the whole validation split up to this many (0: all of it)
EXPORT_MARKER = ".zoo-export"  # exports/<run>/.zoo-export: a folder zoo made (it writes nowhere else)
MODEL_JSON, PARITY_JSON = "model.json", "parity.json"


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
    max_images: int = DEFAULT_PARITY_IMAGES,
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
    ``max_images`` is how many of the run's validation images the parity gate sees (spread over the
    split; 0: all). ``dynamic_batch=False`` fixes the batch at ``batch_size``. ``embed_preprocessing`` makes ONNX files
    that take decoded uint8 images (N, H, W, 3) of any size. ``model`` is the module to load the
    checkpoint into when it is not a registered model (one trained with ``zoo.fit``). The eager
    reference runs on ``reference_device`` (fp32, TF32 off). With ``strict`` (the default) it raises
    ExportError when a file fails its parity gate (else ``result.passed`` says so); the files stay and
    model.json marks them failed.
    """
    from zoo.exporter.loading import load_checkpoint
    from zoo.exporter.parity import calibration_images as calibration, check as parity_check, cross_check, load_eval_images
    from zoo.hub import file_digest
    from zoo.outputs import as_folder, staged_output

    formats = _chosen(format)
    if batch_size < 1:
        raise ExportError(f"--batch-size {batch_size} must be at least 1")
    loaded = load_checkpoint(run, checkpoint, model)
    meta, net = loaded.meta, loaded.model.float().eval()
    name = loaded.run.name if loaded.run else loaded.checkpoint.stem
    out = as_folder(output if output else Path("exports") / name)
    size = meta.preprocessing.input_size
    example = torch.randn(2 if dynamic_batch else batch_size, 3, size, size)
    options = ExportOptions(opset=opset, dynamic_batch=dynamic_batch, batch_size=batch_size,
                            embed_preprocessing=embed_preprocessing)
    eval_images = load_eval_images(meta, loaded.run, images, max_images) if check else None
    checkpoint_sha256 = file_digest(loaded.checkpoint)
    records, parity, seconds = {}, {}, {}
    with staged_output(out, EXPORT_MARKER, "export folder", ExportError, legacy=_made_by_zoo) as staging:
        # formats exported earlier from the same checkpoint stay, with their records; anything else goes
        new_files = {fmt.name: fmt.path_in(staging, options).name for fmt in formats}
        kept_records, kept_parity = carry_over(out, staging, checkpoint_sha256, new_files)
        for fmt in formats:
            key = fmt.name
            started = time.perf_counter()
            fmt_options = options
            if fmt.gate == "top1":  # int8: calibrated on training images
                fmt_options = ExportOptions(**{**options.__dict__, "calibration": calibration(
                    meta, loaded.run, images, calibration_images, decoded=embed_preprocessing)})
            path = fmt.path_in(staging, options)
            before = _files_in(staging)
            log.info("exporting %s as %s to %s", meta.model, fmt.name, out / path.name)
            details = fmt.export(net, path, example, meta, fmt_options)
            runner = fmt.load(path)
            written = sorted(_files_in(staging) - before) or [path.name]
            if check:
                parity[key] = {**parity_check(net, eval_images, runner, fmt.gate, atol, rtol,
                                              device=reference_device), **details}
                cross_check(net, eval_images, fmt, path, parity[key], device=reference_device)
                _log(key, parity[key])
            records[key] = {
                "format": fmt.name, "path": path.name, "sha256": file_digest(path), "bytes": path.stat().st_size,
                **{("input_name" if k == "input" else k): v for k, v in details.items()},  # ONNX: the tensor's name
                "input": describe_input(runner, size), "parity_passed": parity.get(key, {}).get("passed"),
                "files": {f: file_digest(staging / f) for f in written},  # every file the format wrote
            }
            seconds[key] = time.perf_counter() - started
        all_parity = {**kept_parity, **parity}
        if all_parity:
            atomic_write_json(staging / PARITY_JSON, all_parity)
        atomic_write_json(staging / MODEL_JSON, {
            **export_metadata(meta),
            "checkpoint": relative_checkpoint(loaded.checkpoint, loaded.run.name if loaded.run else None),
            "checkpoint_sha256": checkpoint_sha256,
            "files": {**kept_records, **records},
        })
    files = {fmt: out / record["path"] for fmt, record in records.items()}
    if loaded.run is not None:
        tell_callbacks(loaded.run, out)
    failed = [f for f, r in parity.items() if not r["passed"]]
    if failed and strict:
        from zoo.exporter.parity import agreement_text

        worst = parity[failed[0]]
        raise ExportError(
            f"{failed[0]} export diverged from PyTorch: max |diff| {worst['max_abs_diff']:.2e} (limit "
            f"{worst['tolerance']:.2e}), {agreement_text(worst)} ({worst['gate']}); "
            f"files kept in {out} for inspection"
        )
    return ExportResult(out, files, parity, seconds)


def tell_callbacks(run, folder: Path) -> None:
    """The callbacks a run trained with (its config's `callbacks`) that have ``on_export(folder, run_dir)``
    hear of the export (a tracker logs model.json and parity.json); one failing is a warning, not an error."""
    from zoo.engine.callbacks import create_callback

    try:
        specs = run.read_config().get("callbacks") or []
    except ZooError:
        return
    for spec in specs:
        try:
            callback = create_callback(spec)
            if hasattr(callback, "on_export"):
                callback.on_export(folder, run.final)
        except Exception as exc:  # noqa: BLE001 - the export itself is done and proven
            log.warning("warning: callback %s could not record the export (%s: %s)", spec.partition(":")[0],
                        type(exc).__name__, (str(exc).splitlines() or [""])[0][:200])


def describe_input(runner, size: int) -> str:
    """What this file takes, in words (model.json says it per file: formats of one export differ)."""
    if runner.input == "uint8":
        return "uint8 (N, H, W, 3) RGB, any H and W"
    batch = runner.static_batch if runner.static_batch else "N"
    return f"float32 ({batch}, 3, {size}, {size})"


def carry_over(previous: Path, staging: Path, checkpoint_sha256: str, new_files: dict[str, str]):
    """Records (and parity reports) of files a previous export of the same checkpoint wrote into
    ``previous`` and this one does not write again (``new_files``: format -> file), with their files
    hard-linked (or copied) into ``staging``; a file that no longer matches its recorded hash is
    dropped. Records are keyed by format; a kept file of a format written again under another file
    name (ONNX with preprocessing embedded is model-uint8.onnx) is keyed "format (file)"."""
    import shutil

    from zoo.files import read_json
    from zoo.hub import file_digest

    model_json = previous / MODEL_JSON
    if not model_json.is_file():
        return {}, {}
    try:
        old = read_json(model_json, "export metadata")
        old_parity = read_json(previous / PARITY_JSON, "parity report") if (previous / PARITY_JSON).is_file() else {}
    except ZooError:  # damaged: nothing of it is kept
        return {}, {}
    if not isinstance(old, dict) or old.get("checkpoint_sha256") != checkpoint_sha256:
        return {}, {}
    records, parity = {}, {}
    for key, record in (old.get("files") or {}).items():
        names = record.get("files") if isinstance(record, dict) else None
        if not isinstance(names, dict) or record.get("path") in new_files.values():
            continue
        fmt = record.get("format", key)
        if not all((previous / f).is_file() and file_digest(previous / f) == digest for f, digest in names.items()):
            log.warning("not keeping the earlier %s export: its files changed since", key)
            continue
        for f in names:
            try:
                os.link(previous / f, staging / f)
            except OSError:
                shutil.copy2(previous / f, staging / f)
        new_key = f"{fmt} ({record['path']})" if fmt in new_files else key
        records[new_key] = record
        if isinstance(old_parity, dict) and key in old_parity:
            parity[new_key] = old_parity[key]
    return records, parity


def _files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}


def _made_by_zoo(folder: Path) -> bool:
    """An export folder from before the marker: a model.json that zoo wrote (classes and files)."""
    from zoo.files import read_json

    try:
        data = read_json(folder / MODEL_JSON, "export metadata")
    except (ZooError, OSError):
        return False
    return isinstance(data, dict) and isinstance(data.get("files"), dict) and "classes" in data


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
    from zoo.exporter.parity import agreement_text

    log.info("parity %-12s %s  max |diff| %.2e (limit %.2e)  max prob diff %.2e  %s  (%d images, batch %s)", name,
             "PASS" if report["passed"] else "FAIL", report["max_abs_diff"], report["tolerance"],
             report["max_prob_diff"], agreement_text(report), report["images"], report["batch_sizes"])
