"""A progress bar for long loops (training epochs, evaluation, prediction), drawn only on a terminal.

Callers ask ``due()`` (a clock read) before doing anything costly for a refresh, such as syncing a
GPU loss, so the bar adds no per-step work; it refreshes about once a second. On a log file or a
pipe nothing is drawn: no redraws, no blank lines.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

REFRESH_S = 1.0


class ProgressBar:
    """step/total, a status text and an ETA from the first update; silent when disabled or not on a terminal."""

    def __init__(self, title: str, total: int, enabled: bool = True):
        self.total, self.started = total, time.perf_counter()
        self.next_refresh = self.started + REFRESH_S
        self.bar = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn

        console = Console(stderr=True)
        if not console.is_terminal:
            return
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                            TextColumn("{task.fields[status]}"), console=console, transient=True)
        self.task = self.bar.add_task(title, total=total, status="starting")
        self.bar.start()

    def due(self) -> bool:
        return self.bar is not None and time.perf_counter() >= self.next_refresh

    def show(self, done: int, status: str = "") -> None:
        if self.bar is None:
            return
        elapsed = time.perf_counter() - self.started
        eta = elapsed / max(done, 1) * (self.total - done)
        self.bar.update(self.task, completed=done, status=f"{status}  ETA {clock(eta)}".strip())
        self.next_refresh = time.perf_counter() + REFRESH_S

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


@contextmanager
def progress_bar(title: str, total: int, enabled: bool = True) -> Iterator[ProgressBar]:
    bar = ProgressBar(title, total, enabled)
    try:
        yield bar
    finally:
        bar.stop()


def clock(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}"
