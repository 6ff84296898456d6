"""zoo export / predict."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from zoo.cli.app import app


@app.command(
    "export",
    short_help="Export a run to ONNX/TorchScript with a parity check   e.g. zoo export --format onnx",
    help="Export RUN's best checkpoint (default: runs/latest) and check it against PyTorch on real images."
    "\n\nExamples:\n\n  zoo export --format onnx\n\n  zoo export runs/latest --format all --atol 1e-5",
)
def export_command(
    run: str = typer.Argument(None, help="run folder or name (default: runs/latest)"),
    checkpoint: Path = typer.Option(None, help="a .safetensors checkpoint (with its .json) instead of a run"),
    format: str = typer.Option("onnx", "--format", "-f", help="onnx | torchscript | all"),
    output: Path = typer.Option(None, "--output", "-o", help="default: exports/<run name>"),
    opset: int = typer.Option(18),
    dynamic_batch: bool = typer.Option(True, "--dynamic-batch/--static"),
    images: Path = typer.Option(None, help="images for the parity check (default: the run's validation split)"),
    atol: float = typer.Option(1e-4, help="largest allowed |logit difference|"),
) -> None:
    from zoo.exporter.api import export

    result = export(run, checkpoint, format, output, opset, dynamic_batch, images, atol)
    for fmt, path in result.files.items():
        report = result.parity.get(fmt, {})
        typer.echo(f"{fmt:<12} {path}  parity {'PASS' if report.get('passed') else 'FAIL'}  "
                   f"max |diff| {report.get('max_abs_diff', float('nan')):.2e}  "
                   f"top-1 agreement {report.get('top1_agreement', float('nan')):.3f}  "
                   f"({report.get('images', 0)} images, batch sizes {report.get('batch_sizes')})")
    typer.echo(f"report: {result.output_dir / 'parity.json'}")


@app.command(
    "predict",
    short_help="Top-k labels for images   e.g. zoo predict exports/run/model.onnx photo.jpg",
    help="Predict labels for images with a run folder, checkpoint, .onnx or TorchScript .pt; "
    "preprocessing and class names come from the file's metadata.\n\nExample: zoo predict runs/latest img.jpg --top-k 3",
)
def predict_command(
    model_file: Path = typer.Argument(..., help="run folder, .safetensors, .onnx or .pt"),
    images: list[Path] = typer.Argument(..., help="image files or folders"),
    top_k: int = typer.Option(5, "--top-k", "-k"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    from zoo.inference import predict

    results = predict(model_file, images, top_k)
    if as_json:
        typer.echo(json.dumps(results, indent=2))
        return
    for item in results:
        if "error" in item:
            typer.echo(f"{item['image']}: skipped ({item['error']})")
            continue
        best = ", ".join(f"{t['label']} {t['prob']:.3f}" for t in item["top"])
        typer.echo(f"{item['image']}: {best}")
