"""zoo cache info / clear."""

from __future__ import annotations

import typer

from zoo.cli.app import app

cache_app = typer.Typer(help="What zoo keeps in its cache folder ($ZOO_CACHE, else ~/.cache/zoo).",
                        no_args_is_help=True)
app.add_typer(cache_app, name="cache", short_help="Cache sizes, and clearing them   e.g. zoo cache clear decoded")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


@cache_app.command("info", help="Files and size of each kind of cache.\n\nExample: zoo cache info")
def info_command() -> None:
    from zoo.cache import cache_usage

    for entry in cache_usage():
        typer.echo(f"{entry.kind:<10} {entry.files:>7} files {_size(entry.bytes):>10}  {entry.path}  "
                   f"({entry.description})")


@cache_app.command("clear", help="Delete kinds of cache, after asking. 'all' is everything zoo can download or "
                   "decode again; 'datasets' (where you may have put data sets by hand) only when named."
                   "\n\nExamples:\n\n  zoo cache clear decoded\n\n  zoo cache clear all --yes")
def clear_command(
    kinds: list[str] = typer.Argument(..., help="decoded | weights | datasets | downloads | extracted | plugins | all"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask"),
) -> None:
    import sys

    from zoo.cache import cache_usage, clear_cache, resolve_kinds

    chosen = resolve_kinds(kinds)
    usage = {entry.kind: entry for entry in cache_usage()}
    listing = ", ".join(f"{k} ({_size(usage[k].bytes)})" for k in chosen)
    if not yes:
        if not sys.stdin.isatty():
            raise typer.BadParameter(f"this would delete {listing}; pass --yes to clear without asking",
                                     param_hint="--yes")
        typer.confirm(f"delete {listing} under {usage[chosen[0]].path.parent}?", abort=True)
    cleared = clear_cache(chosen)
    typer.echo(f"freed {_size(cleared.freed)}")
    if cleared.in_use:
        typer.echo(f"kept {len(cleared.in_use)} file(s) a running zoo process is using (e.g. {cleared.in_use[0]}); "
                   "clear again once it has finished")
