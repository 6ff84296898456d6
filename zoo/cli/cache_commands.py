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


@cache_app.command("clear", help="Delete kinds of cache (all of it can be downloaded or decoded again)."
                   "\n\nExample: zoo cache clear decoded")
def clear_command(
    kinds: list[str] = typer.Argument(..., help="decoded | weights | datasets | downloads | extracted | all"),
) -> None:
    from zoo.cache import CACHE_KINDS, clear_cache

    freed = clear_cache(list(CACHE_KINDS) if kinds == ["all"] else kinds)
    typer.echo(f"freed {_size(freed)}")
