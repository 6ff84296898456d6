"""zoo predict / zoo eval."""

from __future__ import annotations

from pathlib import Path

import typer

from zoo.cli.app import app, fail, printable

MODEL_HELP = "run folder, run name or latest, .safetensors checkpoint, .onnx or TorchScript .pt"


@app.command(
    "predict",
    short_help="Top-k labels for images   e.g. zoo predict exports/run/model.onnx photo.jpg",
    help="Predict labels for images with a run, a checkpoint or an export; preprocessing and class names come "
    "from the model file's metadata. Results come in the order the images are given."
    "\n\nExamples:\n\n  zoo predict latest img.jpg --top-k 3\n\n"
    "  zoo predict exports/run/model.onnx \"photos/**/*.jpg\" --output preds.csv",
)
def predict_command(
    model_file: str = typer.Argument(..., metavar="MODEL", help=MODEL_HELP),
    images: list[str] = typer.Argument(..., metavar="IMAGES", help="image files, folders or quoted globs"),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="labels per image"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    output: Path = typer.Option(None, "--output", "-o", help="also write one row per image to a .csv or .jsonl"),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="images per forward pass"),
    device: str = typer.Option("auto", help="auto | cpu | cuda | mps (run folders and checkpoints)"),
    threshold: str = typer.Option(None, "--threshold", help="multi-label models: a probability (labels at or above "
                                  "it), or tuned (per-class thresholds tuned on val)  [default: the model's, 0.5]"),
) -> None:
    import json

    from zoo.inference import predict

    results = predict(model_file, images, top_k, batch_size=batch_size, device=device, output=output,
                      threshold=threshold)
    if as_json:
        typer.echo(json.dumps(results, indent=2))
    else:
        for item in results:
            if "error" in item:
                typer.echo(f"{printable(item['image'])}: skipped ({printable(item['error'])})")
                continue
            shown = item["labels"] if "labels" in item else item["top"]  # multi-label: the labels predicted
            best = ", ".join(f"{printable(t['label'])} {t['prob']:.3f}" for t in shown)
            typer.echo(f"{printable(item['image'])}: {best or '(no label above the threshold)'}")
    if all("error" in item for item in results):
        fail(f"none of the {len(results)} images could be read (reasons above); pass image files")


@app.command(
    "eval",
    short_help="Score a run or an export on a dataset split   e.g. zoo eval latest --data food20",
    help="Score MODEL on a whole dataset split: top-1/top-5, per-class precision/recall/F1, a confusion matrix "
    "(JSON + PNG) and the hardest mistakes as an HTML page with thumbnails, written to an output folder."
    "\n\nExamples:\n\n  zoo eval latest\n\n  zoo eval exports/run/model.onnx --data food20 --split test",
)
def eval_command(
    model_file: str = typer.Argument(..., metavar="MODEL", help=MODEL_HELP),
    data: str = typer.Option(None, "--data", "-d", help="dataset name or path (default: the one the run trained on)"),
    split: str = typer.Option(None, help="val | test | train (default: the dataset's evaluation split)"),
    output: Path = typer.Option(None, "--output", "-o", help="report folder (default: eval-... beside the model)"),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    device: str = typer.Option("auto", help="auto | cpu | cuda | mps (run folders and checkpoints)"),
    data_root: str = typer.Option(None, help="folder holding named datasets"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
    threshold: str = typer.Option(None, "--threshold", help="multi-label models: the probability from which a "
                                  "label is predicted, or tuned (per class, tuned on val)  [default: the model's, 0.5]"),
) -> None:
    from zoo.evaluation import evaluate

    report = evaluate(model_file, data, split, output, batch_size, device, data_root, progress=not quiet,
                      threshold=threshold)
    typer.echo(report.summary())
    written = sorted(p.name for p in Path(report.output_dir).iterdir() if not p.name.startswith("."))
    typer.echo(f"report: {report.output_dir} ({', '.join(written)})")
    if report.multilabel:
        worst = sorted(report.per_class, key=lambda c: c["f1"])[:5]
        typer.echo("per class (TP/FP/FN at the threshold), lowest F1 first: " + "; ".join(
            f"{c['class']} {c['tp']}/{c['fp']}/{c['fn']}" for c in worst))
    elif "confusion_matrix.png" not in written:
        typer.echo("note: no confusion_matrix.png: plots need matplotlib (pip install 'zoo[plots]')", err=True)
