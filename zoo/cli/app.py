"""The typer app and the one place where library errors become one-line messages.

Usage errors (an unknown option, a missing value, a value of the wrong type) keep click's own
message, with the close matches and exit code 2. Library errors (ZooError) are `error: <one line>`
and exit code 1; anything unexpected is one line too, with the traceback under ZOO_DEBUG=1.
"""

from __future__ import annotations

import logging
import os
import sys

import typer
from typer.core import TyperCommand, TyperGroup

# The click that typer runs on: its own vendored copy (typer >= 0.29, whose Exit/Abort are typer's) or the
# click package (older typer: its Exit and Abort too).
click_exceptions = sys.modules[typer.BadParameter.__module__]
PASS_THROUGH = tuple({click_exceptions.ClickException, typer.Exit, typer.Abort, BrokenPipeError,
                      getattr(click_exceptions, "Exit", typer.Exit), getattr(click_exceptions, "Abort", typer.Abort)})


def debug_enabled() -> bool:
    return os.environ.get("ZOO_DEBUG", "") not in ("", "0")


class ZooGroup(TyperGroup):
    """Turns ZooError (and a few others users hit) into `error: ...` on stderr and exit 1."""

    def invoke(self, ctx):
        from zoo.errors import ZooError

        try:
            return super().invoke(ctx)
        except PASS_THROUGH:
            raise  # help, usage errors (exit 2) and deliberate exits keep their own exit codes
        except ZooError as exc:
            fail(str(exc), exc, code=getattr(exc, "exit_code", 1))
        except KeyboardInterrupt as exc:
            fail("interrupted", exc, code=130)
        except MemoryError as exc:
            fail("out of memory; use a smaller --batch-size or --image-size", exc)
        except Exception as exc:  # noqa: BLE001 - anything else: one line, traceback on ZOO_DEBUG
            if _is_cuda_oom(exc):
                fail("CUDA out of memory; use a smaller --batch-size or --accumulate-steps", exc)
            fail(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
                 "(unexpected; rerun with ZOO_DEBUG=1 for the traceback and report it)", exc)


class PanelledCommand(TyperCommand):
    """Plain --help whose options are grouped under the panel each declares (rich_help_panel)."""

    def format_options(self, ctx, formatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                title = "Arguments"
            else:
                title = getattr(param, "rich_help_panel", None) or "Options"
            sections.setdefault(title, []).append(record)
        for title, records in sections.items():
            with formatter.section(title):
                formatter.write_dl(records)


def _is_cuda_oom(exc: BaseException) -> bool:
    return type(exc).__name__ == "OutOfMemoryError" or "CUDA out of memory" in str(exc)


def printable(text: str) -> str:
    """Text for the terminal with control characters shown escaped: a file named with an escape
    sequence (`\x1b]0;TITLE\x07`) must not drive the user's terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))


def shorten(message: str, limit: int = 1000) -> str:
    """One readable line even when it quotes a 50 MB value: the start and the end, with the length."""
    if len(message) <= limit:
        return message
    return f"{message[:limit * 2 // 3]} ...[{len(message) - limit:,} characters left out]... {message[-limit // 3:]}"


def fail(message: str, exc: BaseException | None = None, code: int = 1):
    if debug_enabled() and exc is not None:
        raise exc
    typer.echo(f"error: {printable(shorten(message))}", err=True)
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
    help="A model zoo for image classification: list models, fine-tune, evaluate, export with parity checks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        from zoo import __version__

        typer.echo(f"zoo {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors."),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print zoo's version and exit."),
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
    except SystemExit as exc:  # typer ends every command this way
        exit_past_stray_threads(exc.code)
        raise


def exit_past_stray_threads(code) -> None:
    """zoo's work is done: a thread a plugin started and never stopped must not keep the command from
    ending (Python waits for non-daemon threads at exit), so leave at once with the command's code."""
    import threading

    stray = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if stray:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code if isinstance(code, int) else (0 if code is None else 1))
