"""zoo list / info / plugins."""

from __future__ import annotations

import typer

from zoo.cli.app import app


@app.command("list", short_help="List models or datasets   e.g. zoo list 'resnet*' --source all",
             help="List models (or datasets) whose name matches PATTERN; a prefix selects a namespace "
             "(zoo list 'tv:mobilenet*').\n\nExample: zoo list 'resnet*' --source all")
def list_command(
    pattern: str = typer.Argument(None, help="fnmatch pattern, e.g. 'resnet*' or 'timm:vit*'"),
    source: str = typer.Option("zoo", help="zoo, a namespace (tv, timm, ...) or all"),
    datasets: bool = typer.Option(False, "--datasets", help="List datasets instead of models, and where they are."),
) -> None:
    if datasets:
        _list_datasets(pattern)
        return
    from zoo.models.api import list_models, model_info

    if pattern and ":" in pattern:
        source = "all"  # the prefix in the pattern picks the namespace
    names = list_models(pattern, source)
    described = _namespace_descriptions(names)
    for name in names:
        if ":" in name:
            prefix = name.split(":", 1)[0]
            typer.echo(f"{name:<32} {prefix:<6} {described.get(name, '')}")
        else:
            info = model_info(name)
            pretrained = "pretrained" if info.has_pretrained else "-"
            typer.echo(f"{name:<18} {info.distribution:<14} {pretrained:<10} {info.description}")
    if source == "zoo" and pattern is None:
        typer.echo("(torchvision and timm models: zoo list --source tv|timm|all, use them as tv:NAME, timm:NAME)")
    if not names:
        typer.echo(f"no model matches {pattern!r} in source {source}{_elsewhere(pattern, source)}", err=True)


def _namespace_descriptions(names: list[str]) -> dict[str, str]:
    """One line per tv:/timm: name (its family and size), remembered per library version."""
    from zoo.models.api import model_info
    from zoo.models.listing_cache import remembered

    prefixes = sorted({n.split(":", 1)[0] for n in names if ":" in n})

    def describe(prefix: str) -> dict[str, str]:
        from zoo.models.api import list_models

        result = {}
        for name in list_models(None, prefix):
            try:
                result[name] = model_info(name).description
            except Exception:  # noqa: BLE001 - a model whose metadata cannot be read is listed bare
                result[name] = ""
        return result

    described: dict[str, str] = {}
    for prefix in prefixes:
        described.update(remembered("descriptions", prefix, lambda prefix=prefix: describe(prefix)))
    return described


def _elsewhere(pattern: str | None, source: str) -> str:
    """Where else the pattern matches, for an empty listing: '; 40 in timm: (zoo list 'timm:vit*')'."""
    from zoo.models.api import list_models
    from zoo.registry.core import get_registry

    if pattern is None or source != "zoo":
        return ""
    hits = [(src, len(list_models(pattern, src))) for src in get_registry().sources() if src != "zoo"]
    found = [f"{n} in {src}: (zoo list '{src}:{pattern}')" for src, n in hits if n]
    return "; " + ", ".join(found) if found else ""


def _list_datasets(pattern: str | None) -> None:
    from zoo.data.api import dataset_info, find_local_dataset, list_datasets

    for name in list_datasets(pattern):
        info = dataset_info(name)
        if info.embedded:
            where = "embedded (needs no files)"
        else:
            found = find_local_dataset(info)
            folder = (info.folder_names or (info.name,))[0]
            where = (f"here: {found}" if found else f"not here ({info.download_size or 'download'})" if info.url
                     else f"not here: a folder {folder}/ under --data-root")
        typer.echo(f"{name:<16} {info.distribution:<14} {where:<44} {info.description}")


@app.command("info", short_help="Show a model's metadata   e.g. zoo info resnet50",
             help="Show a model's metadata, parameter count and input size.\n\nExample: zoo info tv:convnext_tiny")
def info_command(
    name: str = typer.Argument(..., help="model name, e.g. resnet50, tv:vit_b_16, timm:convnext_tiny"),
    num_classes: int = typer.Option(None, help="Build with this many classes to count parameters."),
) -> None:
    from zoo.models.listing_cache import remembered

    def describe() -> dict[str, str]:
        from zoo.models.api import count_parameters, create_model, model_info

        info = model_info(name)
        model = create_model(name, num_classes=num_classes)
        return {
            "name": info.name,
            "source": f"{info.source} ({info.distribution})",
            "family": info.family,
            "description": info.description,
            "parameters": f"{count_parameters(model):,}",
            "input size": f"3x{info.input_size}x{info.input_size} (evaluation: {info.preprocessing().describe()})",
            "mean / std": f"{list(info.mean)} / {list(info.std)}",
            "interpolation": info.interpolation,
            "classifier": info.classifier,
            "classes (default)": str(info.default_num_classes),
            "pretrained": (info.weights.url if info.weights else "via " + info.source if info.has_pretrained
                           else "none"),
        }

    # names of zoo's own models and plugins' may change with their code: only namespace models are remembered
    rows = remembered("info", f"{name}|{num_classes}", describe) if ":" in name else describe()
    for key, value in rows.items():
        typer.echo(f"{key:<18} {value}")


@app.command("plugins", short_help="Show loaded and failed plugins   e.g. zoo plugins",
             help="Show every plugin entry point: what it registered, or why it failed.\n\nExample: zoo plugins")
def plugins_command() -> None:
    from zoo.registry.core import list_plugins

    records = list_plugins()
    for rec in records:
        if rec.ok:
            what = "; ".join(f"{table}: {', '.join(names)}" for table, names in rec.registered.items())
            what = what or "registered nothing"
            typer.echo(f"ok      {rec.distribution:<20} {rec.group:<13} {rec.name:<12} {what}")
        else:
            typer.echo(f"FAILED  {rec.distribution:<20} {rec.group:<13} {rec.name:<12} {rec.error}")
    failed = sum(not r.ok for r in records)
    typer.echo(f"{len(records) - failed} loaded, {failed} failed")
