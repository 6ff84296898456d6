"""zoo export."""

from __future__ import annotations

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
