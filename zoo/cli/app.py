"""The typer app and the one place where library errors become one-line messages."""

from __future__ import annotations

import logging
import os
import sys

import click
import typer
from typer.core import TyperGroup


def debug_enabled() -> bool:
    return os.environ.get("ZOO_DEBUG", "") not in ("", "0")


class ZooGroup(TyperGroup):
    """Turns ZooError (and a few others users hit) into `error: ...` on stderr and exit 1."""

    def invoke(self, ctx: click.Context):
        from zoo.errors import ZooError

        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, typer.Exit, click.ClickException, click.Abort, BrokenPipeError):
            raise  # help, usage errors and deliberate exits keep their own exit codes
        except ZooError as exc:
            fail(str(exc), exc)
        except KeyboardInterrupt as exc:
            fail("interrupted", exc, code=130)
        except MemoryError as exc:
            fail("out of memory; use a smaller --batch-size or --image-size", exc)
        except Exception as exc:  # noqa: BLE001 - anything else: one line, traceback on ZOO_DEBUG
            if _is_cuda_oom(exc):
                fail("CUDA out of memory; use a smaller --batch-size or --accumulate-steps", exc)
            fail(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
                 "(unexpected; rerun with ZOO_DEBUG=1 for the traceback and report it)", exc)


def _is_cuda_oom(exc: BaseException) -> bool:
    return type(exc).__name__ == "OutOfMemoryError" or "CUDA out of memory" in str(exc)


def fail(message: str, exc: BaseException | None = None, code: int = 1):
    if debug_enabled() and exc is not None:
        raise exc
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is now (test runners swap it), not the one seen at creation."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


app = typer.Typer(
    cls=ZooGroup,
    name="zoo",
    help="A model zoo for image classification: list models, fine-tune, export with parity checks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


@app.callback()
def _root(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors."),
) -> None:
    # zoo's own messages only: libraries (onnxscript, torch.onnx) log chattily at INFO
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    zoo_log = logging.getLogger("zoo")
    zoo_log.handlers[:] = [handler]
    zoo_log.setLevel(logging.WARNING if quiet else logging.INFO)
    zoo_log.propagate = False


def main() -> None:
    try:
        app()
    except BrokenPipeError:  # `zoo list | head` closed the pipe: not an error
        sys.stderr.close()
        sys.exit(0)
