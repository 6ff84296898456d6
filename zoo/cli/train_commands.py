"""zoo finetune."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from zoo.cli.app import app


@app.command(
    "finetune",
    short_help="Train MODEL on DATA, keep best/last   e.g. zoo finetune resnet18 --data hymenoptera",
    help="Fine-tune MODEL on DATA (a dataset name or a folder), keeping best/last checkpoints in a run folder."
    "\n\nExamples:\n\n  zoo finetune resnet18 --data hymenoptera --epochs 5\n\n"
    "  zoo finetune tv:resnet152 --data food20 --weights DEFAULT --freeze backbone --augment strong\n\n"
    "  zoo finetune --resume runs/latest --epochs 20",
)
def finetune_command(
    model: str = typer.Argument(None, help="model name (zoo list); omit with --resume"),
    data: str = typer.Option(None, "--data", "-d", help="dataset name or path"),
    config: Path = typer.Option(None, help="TOML/JSON file with TrainConfig fields (options given here win)"),
    resume: str = typer.Option(None, help="run folder (or 'latest') to continue"),
    data_root: str = typer.Option(None, help="folder holding named datasets"),
    epochs: int = typer.Option(None), batch_size: int = typer.Option(None), image_size: int = typer.Option(None),
    lr: float = typer.Option(None), weight_decay: float = typer.Option(None),
    optimizer: str = typer.Option(None, help="sgd | adam | adamw"), momentum: float = typer.Option(None),
    nesterov: bool = typer.Option(None, "--nesterov/--no-nesterov"),
    scheduler: str = typer.Option(None, help="cosine | step | multistep | onecycle | none"),
    warmup_epochs: float = typer.Option(None), warmup_steps: int = typer.Option(None),
    step_size: int = typer.Option(None), gamma: float = typer.Option(None),
    milestones: str = typer.Option(None, help="comma-separated epochs for multistep, e.g. 30,60"),
    label_smoothing: float = typer.Option(None), accumulate_steps: int = typer.Option(None),
    grad_clip: float = typer.Option(None), seed: int = typer.Option(None),
    device: str = typer.Option(None, help="auto | cuda | mps | cpu"),
    precision: str = typer.Option(None, help="auto | bf16 | fp16 | fp32"),
    channels_last: bool = typer.Option(None, "--channels-last/--no-channels-last"),
    compile: bool = typer.Option(None, "--compile/--no-compile"),
    workers: int = typer.Option(None), weights: str = typer.Option(None, help="DEFAULT or a weights file"),
    augment: str = typer.Option(None, help="auto | none | light | strong | cifar"),
    cache: str = typer.Option(None, help="auto | memory | disk | none (decode-once image cache; disk is kept "
                              "under ~/.cache/zoo/decoded and reused by later runs)"),
    pipeline: str = typer.Option(None, help="auto | workers | device (augment whole cached batches on the device)"),
    feature_cache: str = typer.Option(None, help="auto | off (head-only runs without augmentation)"),
    new_head: bool = typer.Option(None, "--new-head", help="--weights has another class count: start a new head"),
    freeze: str = typer.Option(None, help="none | backbone | N first stages"),
    unfreeze_at: int = typer.Option(None, help="epoch at which the frozen body starts training"),
    body_lr_scale: float = typer.Option(None), patience: int = typer.Option(None),
    val_ratio: float = typer.Option(None), output: str = typer.Option(None, "--output", "-o"),
    overwrite: bool = typer.Option(None, "--overwrite"),
    quiet: bool = typer.Option(None, "--quiet", "-q", help="no progress bar or epoch lines; print only the result"),
    max_steps_per_epoch: int = typer.Option(None, hidden=True),
) -> None:
    from zoo.engine.api import finetune

    options = {k: v for k, v in locals().items() if k not in ("model", "data", "config", "resume", "finetune")}
    if milestones is not None:
        options["milestones"] = [int(m) for m in milestones.split(",") if m.strip()]
    if model is None and resume is None and config is None:
        raise typer.BadParameter("give a MODEL (see `zoo list`), or --resume RUN")
    if quiet:  # for scripts: no progress bar, no per-epoch lines, only warnings and the result below
        logging.getLogger("zoo").setLevel(logging.WARNING)
    result = finetune(model=model, data=data, config=config, resume=resume,
                      **{k: v for k, v in options.items() if v is not None})
    if quiet:  # otherwise the log's last line already said it
        typer.echo(f"best val top-1 {result.best_top1:.4f} (epoch {result.best_epoch}); run folder {result.run_dir}")
