"""The `zoo` command: a thin typer layer over the library.

Nothing here imports torch or any plugin at import time, so `zoo --help` stays fast; each
command imports the library function it wraps when it runs.
"""

from __future__ import annotations

from zoo.cli.app import app, main
from zoo.cli import (  # noqa: F401,E402 - each module adds its commands to app
    cache_commands, data_commands, export_commands, model_commands, predict_commands, serve_commands,
    train_commands,
)

__all__ = ["app", "main"]
