"""zoo data check, zoo data pack."""

from __future__ import annotations

import typer

from zoo.cli.app import app

data_app = typer.Typer(help="Inspect and pack datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data", short_help="Inspect or pack a dataset   e.g. zoo data check ./my_images")


@data_app.command("check", help="Layout, classes and counts per split, bad files, train/val duplicates, image sizes."
                  "\n\nExample: zoo data check food20")
def check_command(
    data: str = typer.Argument(..., help="dataset name or path"),
    data_root: str = typer.Option(None, help="folder holding named datasets"),
    layout: str = typer.Option(None, help="a layout name (default: detected); zoo data check shows which"),
) -> None:
    from zoo.data.api import create_dataset
    from zoo.data.check import check_dataset

    dataset = create_dataset(data, data_root=data_root, layout=layout, check=False)  # problems are reported below
    report = check_dataset(dataset)
    typer.echo(f"dataset   {report.name}\nlayout    {report.layout}\nroot      {report.root or '(in memory)'}")
    typer.echo(f"task      {report.task}" + (" (several labels per image; counts are images showing the class)"
                                               if report.cardinality else ""))
    typer.echo(f"classes   {len(report.classes)}")
    splits = list(report.counts)
    typer.echo("  " + f"{'class':<28}" + "".join(f"{s:>8}" for s in splits))
    for i, name in enumerate(report.classes):
        typer.echo("  " + f"{name[:28]:<28}" + "".join(f"{report.counts[s][i]:>8}" for s in splits))
    if report.cardinality:
        typer.echo("  " + f"{'images':<28}" + "".join(f"{report.images[s]:>8}" for s in splits))
        typer.echo("  " + f"{'labels per image (mean)':<28}" + "".join(f"{report.cardinality[s]['mean']:>8.2f}"
                                                                         for s in splits))
        typer.echo("  " + f"{'labels per image (min-max)':<28}" + "".join(
            f"{str(report.cardinality[s]['min']) + '-' + str(report.cardinality[s]['max']):>8}" for s in splits))
    else:
        typer.echo("  " + f"{'total':<28}" + "".join(f"{sum(report.counts[s]):>8}" for s in splits))
    if report.size_range:
        typer.echo(f"sizes     {report.size_range['min'][0]}x{report.size_range['min'][1]} (smallest w x h) to "
                   f"{report.size_range['max'][0]}x{report.size_range['max'][1]} (largest)")
    typer.echo(f"skipped   {len(report.skipped)} unreadable files")
    for path, reason in report.skipped:
        typer.echo(f"  {path}: {reason}")
    typer.echo(f"duplicates {len(report.duplicates)} images appear in both train and evaluation splits")
    for train_file, eval_file in report.duplicates[:20]:
        typer.echo(f"  {train_file} == {eval_file}")
    for warning in report.warnings:
        typer.echo(f"warning: {warning}")
    for problem in report.problems:
        typer.echo(f"error: {problem}", err=True)
    if not report.ok:
        raise typer.Exit(1)


@data_app.command("pack", help="Write a dataset as WebDataset tar shards (image bytes as stored, labels, a dataset.json "
                  "card) that `zoo finetune --data OUT` trains on streaming. Shards are written whole or not at all; "
                  "packing again after a stop continues after the last whole shard."
                  "\n\nExample: zoo data pack food20 shards/food20 --shard-size 256MB")
def pack_command(
    data: str = typer.Argument(..., help="dataset name or path"),
    output: str = typer.Argument(..., metavar="OUT", help="folder for the shards (empty, new, or a stopped pack)"),
    shard_size: str = typer.Option("512MB", "--shard-size", help="bytes of images per shard, e.g. 512MB or 1GiB"),
    data_root: str = typer.Option(None, help="folder holding named datasets"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    from zoo.data.shards import pack

    result = pack(data, output, shard_size, data_root=data_root, progress=not quiet)
    for split, info in result.splits.items():
        typer.echo(f"{split:<6} {info['samples']:>8} samples in {info['shards']} shards")
    if result.resumed_shards:
        typer.echo(f"kept {result.resumed_shards} shards a stopped pack had finished")
    typer.echo(f"packed into {result.output}; train with: zoo finetune MODEL --data {result.output}")
