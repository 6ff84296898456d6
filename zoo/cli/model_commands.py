"""zoo list / info / plugins."""

from __future__ import annotations

import typer

from zoo.cli.app import app


@app.command("list", short_help="List models or datasets   e.g. zoo list 'resnet*' --source all",
             help="List models (or datasets) whose name matches PATTERN.\n\nExample: zoo list 'resnet*' --source all")
def list_command(
    pattern: str = typer.Argument(None, help="fnmatch pattern, e.g. 'resnet*'"),
    source: str = typer.Option("zoo", help="zoo, tv, timm or all"),
    datasets: bool = typer.Option(False, "--datasets", help="List datasets instead of models."),
) -> None:
    if datasets:
        from zoo.data.api import dataset_info, list_datasets

        for name in list_datasets(pattern):
            info = dataset_info(name)
            typer.echo(f"{name:<16} {info.distribution:<14} {info.description}")
        return
    from zoo.models.api import list_models, model_info

    names = list_models(pattern, source)
    for name in names:
        if name.startswith(("tv:", "timm:")):
            typer.echo(name)
        else:
            info = model_info(name)
            pretrained = "pretrained" if info.has_pretrained else "-"
            typer.echo(f"{name:<18} {info.distribution:<14} {pretrained:<10} {info.description}")
    if source == "zoo" and pattern is None:
        typer.echo("(torchvision and timm models: zoo list --source tv|timm|all, use them as tv:NAME, timm:NAME)")
    if not names:
        typer.echo(f"no model matches {pattern!r} in source {source}", err=True)


@app.command("info", short_help="Show a model's metadata   e.g. zoo info resnet50",
             help="Show a model's metadata, parameter count and input size.\n\nExample: zoo info tv:convnext_tiny")
def info_command(
    name: str = typer.Argument(..., help="model name, e.g. resnet50, tv:vit_b_16, timm:convnext_tiny"),
    num_classes: int = typer.Option(None, help="Build with this many classes to count parameters."),
) -> None:
    from zoo.models.api import count_parameters, create_model, model_info

    info = model_info(name)
    model = create_model(name, num_classes=num_classes)
    rows = {
        "name": info.name,
        "source": f"{info.source} ({info.distribution})",
        "family": info.family,
        "description": info.description,
        "parameters": f"{count_parameters(model):,}",
        "input size": f"3x{info.input_size}x{info.input_size} (eval resize {info.preprocessing()['resize_size']})",
        "mean / std": f"{list(info.mean)} / {list(info.std)}",
        "interpolation": info.interpolation,
        "classifier": info.classifier,
        "classes (default)": str(info.default_num_classes),
        "pretrained": (info.weights.url if info.weights else "via " + info.source if info.has_pretrained else "none"),
    }
    for key, value in rows.items():
        typer.echo(f"{key:<18} {value}")


@app.command("plugins", short_help="Show loaded and failed plugins   e.g. zoo plugins",
             help="Show every plugin entry point: what it registered, or why it failed.\n\nExample: zoo plugins")
def plugins_command() -> None:
    from zoo.plugins_api import list_plugins

    records = list_plugins()
    for rec in records:
        if rec.ok:
            what = ", ".join(
                part for part in (
                    f"models: {', '.join(rec.models)}" if rec.models else "",
                    f"datasets: {', '.join(rec.datasets)}" if rec.datasets else "",
                ) if part
            ) or "registered nothing"
            typer.echo(f"ok      {rec.distribution:<20} {rec.group:<13} {rec.name:<12} {what}")
        else:
            typer.echo(f"FAILED  {rec.distribution:<20} {rec.group:<13} {rec.name:<12} {rec.error}")
    failed = sum(not r.ok for r in records)
    typer.echo(f"{len(records) - failed} loaded, {failed} failed")
