"""What a training run shows while it runs: a progress bar per epoch and one line per epoch.

The bar is drawn only on a terminal and refreshed about once a second: the loop asks ``due()``
(a clock read, no GPU sync) and syncs the running loss only when a refresh is due. Epoch lines go
through the "zoo" logger; a library caller who configured no logging still sees them (``fit``
attaches a stderr handler for the run unless ``quiet``).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("zoo.engine")
REFRESH_S = 1.0


class EpochProgress:
    """A rich bar: step/total, loss, images/s and ETA; silent when quiet or not on a terminal."""

    def __init__(self, title: str, total: int, enabled: bool):
        self.total, self.started, self.next_refresh = total, time.perf_counter(), time.perf_counter() + REFRESH_S
        self.bar = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn

        console = Console(stderr=True)
        if not console.is_terminal:  # a log file gets the epoch lines only, no bar redraws or blank lines
            return
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                            TextColumn("{task.fields[status]}"), console=console, transient=True)
        self.task = self.bar.add_task(title, total=total, status="starting")
        self.bar.start()

    def due(self) -> bool:
        return self.bar is not None and time.perf_counter() >= self.next_refresh

    def show(self, step: int, loss: float, seen: int) -> None:
        if self.bar is None:
            return
        elapsed = time.perf_counter() - self.started
        eta = elapsed / max(step, 1) * (self.total - step)
        status = f"loss {loss:.4f}  {seen / elapsed:.0f} img/s  ETA {_clock(eta)}"
        self.bar.update(self.task, completed=step, status=status)
        self.next_refresh = time.perf_counter() + REFRESH_S

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


@contextmanager
def epoch_progress(title: str, total: int, quiet: bool) -> Iterator[EpochProgress]:
    progress = EpochProgress(title, total, enabled=not quiet)
    try:
        yield progress
    finally:
        progress.stop()


@contextmanager
def run_output(quiet: bool) -> Iterator[None]:
    """Show zoo's INFO lines on stderr for the run when nobody configured logging (a Python caller);
    with ``quiet`` show warnings only. A CLI or application that set up logging keeps its own."""
    zoo_log = logging.getLogger("zoo")
    added = None
    saved_level = zoo_log.level
    if quiet:
        zoo_log.setLevel(logging.WARNING)
    elif not zoo_log.handlers and not logging.getLogger().handlers:
        added = logging.StreamHandler(sys.stderr)
        added.setFormatter(logging.Formatter("%(message)s"))
        zoo_log.addHandler(added)
        zoo_log.setLevel(logging.INFO)
    try:
        yield
    finally:
        if added is not None:
            zoo_log.removeHandler(added)
        zoo_log.setLevel(saved_level)


def log_epoch(row: dict, epochs: int, improved: bool) -> None:
    log.info("epoch %d/%d  train loss %.4f top-1 %.3f | val loss %.4f top-1 %.3f top-5 %.3f | %.0f img/s, %.1f s, "
             "data wait %.0f%%%s", row["epoch"], epochs, row["train_loss"], row["train_top1"], row["val_loss"],
             row["val_top1"], row["val_top5"], row["images_per_s"], row["epoch_time_s"],
             100 * row["data_wait_frac"], "  (best)" if improved else "")


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"
