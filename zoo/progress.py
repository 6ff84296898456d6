"""Progress for long loops (training epochs, evaluation, prediction): a bar on a terminal, plain lines elsewhere.

Callers ask ``due()`` (a clock read) before doing anything costly for a refresh, such as syncing a
GPU loss, so progress adds no per-step work. On a terminal the bar refreshes about once a second.
Off a terminal (a log file, CI, nohup, a notebook) no bar is drawn: one plain line goes to stderr at
most every ``ZOO_LOG_EVERY`` seconds (30 by default; `zoo finetune --log-every`), with the step,
the status (loss, img/s) and the ETA, so a long run is never silent for minutes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

REFRESH_S = 1.0
LOG_EVERY_S = 30.0  # off a terminal: a plain line at most this often


def log_every() -> float:
    import os

    try:
        return max(1.0, float(os.environ.get("ZOO_LOG_EVERY", LOG_EVERY_S)))
    except ValueError:
        return LOG_EVERY_S


class ProgressBar:
    """step/total, a status text and an ETA from the first update; silent when disabled or not on a terminal."""

    def __init__(self, title: str, total: int, enabled: bool = True, every: float | None = None):
        self.title, self.total, self.started = title, total, time.perf_counter()
        self.every = every or log_every()
        self.next_refresh = self.started + REFRESH_S
        self.bar = None
        self.plain = False  # off a terminal: plain lines every log_every() seconds
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn

        console = Console(stderr=True)
        if not console.is_terminal:
            self.plain = True
            self.next_refresh = self.started + self.every
            return
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                            TextColumn("{task.fields[status]}"), console=console, transient=True)
        self.task = self.bar.add_task(title, total=total, status="starting")
        self.bar.start()

    def due(self) -> bool:
        return (self.bar is not None or self.plain) and time.perf_counter() >= self.next_refresh

    def show(self, done: int, status: str = "") -> None:
        if self.bar is None and not self.plain:
            return
        elapsed = time.perf_counter() - self.started
        eta = elapsed / max(done, 1) * (self.total - done)
        if self.plain:
            if done < self.total:  # the end of a loop has its own line (the epoch line)
                import sys

                print(f"{self.title}  step {done}/{self.total}  {status}  ETA {clock(eta)}", file=sys.stderr, flush=True)
            self.next_refresh = time.perf_counter() + self.every
            return
        self.bar.update(self.task, completed=done, status=f"{status}  ETA {clock(eta)}".strip())
        self.next_refresh = time.perf_counter() + REFRESH_S

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


@contextmanager
def progress_bar(title: str, total: int, enabled: bool = True, every: float | None = None) -> Iterator[ProgressBar]:
    bar = ProgressBar(title, total, enabled, every)
    try:
        yield bar
    finally:
        bar.stop()


def clock(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}"
