"""zoo export: the formats, their choices and help come from the registry of export formats."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.core import TyperCommand

from zoo.cli.app import app


class FormatsCommand(TyperCommand):
    """Fills --format's help with the registered formats when help is shown (not at `zoo --help`)."""

    def format_help(self, ctx, formatter) -> None:
        from zoo.exporter.formats import format_names

        for param in self.params:
            if param.name == "format":
                param.help = f"{' | '.join(format_names())}, several comma-separated, or all (see --list-formats)"
        super().format_help(ctx, formatter)


def _format_names() -> list[str]:
    from zoo.exporter.formats import format_names

    return format_names()


@app.command(
    "export",
    cls=FormatsCommand,
    short_help="Export a run (ONNX, int8, pt2, TorchScript) with a parity check   e.g. zoo export --format onnx",
    help="Export RUN's best checkpoint (default: runs/latest) and check each file against PyTorch on real images."
    "\n\nExamples:\n\n  zoo export --format onnx\n\n  zoo export runs/latest --format all\n\n"
    "  zoo export --format onnx,onnx-int8 --embed-preprocessing\n\n  zoo export --list-formats",
)
def export_command(
    run: str = typer.Argument(None, help="run folder or name (default: runs/latest)"),
    checkpoint: Path = typer.Option(None, help="a .safetensors checkpoint (with its .json) instead of a run"),
    format: str = typer.Option("onnx", "--format", "-f", autocompletion=_format_names,
                               help="format name(s), comma-separated, or all (see --list-formats)"),
    list_formats: bool = typer.Option(False, "--list-formats", help="list the formats, their files and whether "
                                      "they can run here, and exit"),
    output: Path = typer.Option(None, "--output", "-o", help="default: exports/<run name>"),
    embed_preprocessing: bool = typer.Option(False, "--embed-preprocessing", help="ONNX files take decoded uint8 "
                                             "images (N, H, W, 3) of any size and preprocess them in the graph"),
    dynamic_batch: bool = typer.Option(True, "--dynamic-batch/--static", help="--static fixes the batch size"),
    batch_size: int = typer.Option(1, "--batch-size", min=1, help="the fixed batch of a --static export"),
    opset: int = typer.Option(18, help="ONNX opset"),
    images: Path = typer.Option(None, help="images for the parity check and int8 calibration (default: the run's "
                                "validation and training splits)"),
    parity_images: int = typer.Option(1000, "--parity-images", min=0, help="validation images the parity gate "
                                      "checks, spread over the split (0: all of it)"),
    atol: float = typer.Option(1e-5, help="parity: |logit diff| <= atol + rtol * max|logit|"),
    rtol: float = typer.Option(1e-4, help="parity: |logit diff| <= atol + rtol * max|logit|"),
) -> None:
    if list_formats:
        from zoo.exporter.api import list_formats as formats

        for row in formats():
            typer.echo(f"{row['name']:<12} {row['file']:<18} {row['status']:<10}  {row['description']}")
        return
    from zoo.exporter.api import export
    from zoo.exporter.parity import agreement_text

    result = export(run, checkpoint, format, output, opset, dynamic_batch, images, atol, rtol, max_images=parity_images,
                    batch_size=batch_size, embed_preprocessing=embed_preprocessing)
    for fmt, path in result.files.items():
        report = result.parity.get(fmt, {})
        typer.echo(f"{fmt:<12} {path}  parity {'PASS' if report.get('passed') else 'FAIL'}  "
                   f"max |diff| {report.get('max_abs_diff', float('nan')):.2e}  "
                   f"max prob diff {report.get('max_prob_diff', float('nan')):.1e}  "
                   f"{agreement_text(report)}  "
                   f"({report.get('images', 0)} images, batch sizes {report.get('batch_sizes')})")
    typer.echo(f"report: {result.output_dir / 'parity.json'}")
