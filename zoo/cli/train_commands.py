"""zoo finetune: its options are generated from TrainConfig's declarations (name, type, help, panel, default)."""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import typing
from pathlib import Path
from typing import Any, Optional

import typer

from zoo.cli.app import PanelledCommand, app
from zoo.engine.config import MODEL_DATA, OUTPUT, TrainConfig, value_type

NOT_OPTIONS = {"model"}  # the MODEL argument


def config_option(f: dataclasses.Field, hint: Any) -> inspect.Parameter:
    """One --option for a TrainConfig field, with the config's default (or, where the default is worked
    out at run time, None and a text saying how). Only options given on the command line are passed
    on, so a --config file's values are not overridden by defaults."""
    meta = f.metadata
    flag = "--" + (meta["cli_name"] or f.name).replace("_", "-")
    base = value_type(hint)
    if base is bool:
        decls = [flag] if f.default is False else [f"{flag}/--no-{flag[2:]}"]
    else:
        decls = [flag]
    if typing.get_origin(base) is list:  # names: the option repeated; numbers: comma-separated
        base = list[str] if typing.get_args(base) == (str,) else str
    if meta["short"]:
        decls.append(meta["short"])
    choices = meta["choices"]
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    if isinstance(default, list) or meta["shown"] or default in (None, ""):
        default, shown = None, meta["shown"] or ("none" if isinstance(default, list) else False)
    else:
        shown = True
    option = typer.Option(
        default, *decls, help=meta["help"], rich_help_panel=meta["panel"], show_default=shown,
        hidden=meta["hidden"], autocompletion=(lambda: list(choices)) if choices else None)
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=Optional[base])


def finetune_parameters() -> list[inspect.Parameter]:
    hints = typing.get_type_hints(TrainConfig)
    keyword = inspect.Parameter.KEYWORD_ONLY
    first = [
        inspect.Parameter("ctx", keyword, annotation=typer.Context),
        inspect.Parameter("model", keyword, annotation=Optional[str], default=typer.Argument(
            None, metavar="MODEL", help="model name (zoo list); omit with --resume or --config", show_default=False)),
        inspect.Parameter("config", keyword, annotation=Optional[Path], default=typer.Option(
            None, help="TOML/JSON file of these options (options given here win)", rich_help_panel=MODEL_DATA)),
    ]
    last = [
        inspect.Parameter("resume", keyword, annotation=Optional[str], default=typer.Option(
            None, help="run folder (or 'latest') to continue from its last finished epoch", rich_help_panel=OUTPUT)),
        inspect.Parameter("dry_run", keyword, annotation=bool, default=typer.Option(
            False, "--dry-run", help="resolve and print everything the run would do; write nothing",
            rich_help_panel=OUTPUT)),
        inspect.Parameter("as_json", keyword, annotation=bool, default=typer.Option(
            False, "--json", help="with --dry-run: the plan as JSON (its 'config' is the run's config.json)",
            rich_help_panel=OUTPUT)),
    ]
    fields = [config_option(f, hints[f.name]) for f in dataclasses.fields(TrainConfig) if f.name not in NOT_OPTIONS]
    return first + fields + last


def finetune_command(**given: Any) -> None:
    from zoo.engine.api import finetune
    from zoo.errors import TrainingError

    ctx = given.pop("ctx")
    model, config, resume, dry_run, as_json = (given.pop(k) for k in ("model", "config", "resume", "dry_run", "as_json"))
    options = {k: v for k, v in given.items() if v is not None and ctx.get_parameter_source(k).name != "DEFAULT"}
    if as_json and not dry_run:
        raise typer.BadParameter("--json prints the plan of --dry-run; add --dry-run", param_hint="--json")
    if "milestones" in options:
        try:
            options["milestones"] = [int(m) for m in options["milestones"].split(",") if m.strip()]
        except ValueError:
            raise TrainingError(f"--milestones takes whole numbers separated by commas, e.g. 30,60; got "
                                f"{given['milestones']!r}") from None
    if model is None and resume is None and config is None:
        raise typer.BadParameter("give a MODEL (see `zoo list`), or --resume RUN", param_hint="MODEL")
    quiet = options.get("quiet", False)
    if quiet:  # for scripts: no progress bar, no per-epoch lines, only warnings and the result below
        logging.getLogger("zoo").setLevel(logging.WARNING)
    result = finetune(model=model, config=config, resume=resume, dry_run=dry_run, **options)
    if dry_run:
        typer.echo(json.dumps(result.to_dict(), indent=2) if as_json else result.describe())
    elif quiet:  # otherwise the log's last line already said it
        from zoo.engine.setup import SELECTION_NAMES

        metric = SELECTION_NAMES[json.loads((result.run_dir / "config.json").read_text())["select_metric"]]
        typer.echo(f"best val {metric} {result.best_top1:.4f} (epoch {result.best_epoch}); run folder {result.run_dir}")


finetune_command.__signature__ = inspect.Signature(finetune_parameters())  # type: ignore[attr-defined]
finetune_command.__annotations__ = {p.name: p.annotation for p in finetune_command.__signature__.parameters.values()}

app.command(
    "finetune",
    cls=PanelledCommand,
    short_help="Train MODEL on DATA, keep best/last   e.g. zoo finetune resnet18 --data hymenoptera",
    help="Fine-tune MODEL on DATA (a dataset name or a folder), keeping best/last checkpoints in a run folder."
    "\n\nExamples:\n\n  zoo finetune resnet18 --data hymenoptera --epochs 5\n\n"
    "  zoo finetune tv:resnet152 --data food20 --weights DEFAULT --freeze backbone --augment strong\n\n"
    "  zoo finetune resnet18 --data ./photos --dry-run\n\n"
    "  zoo finetune --resume runs/latest --epochs 20",
)(finetune_command)
