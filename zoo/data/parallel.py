"""Per-image work (decode checks, the decode-once cache) spread over the machine's cores.

Decoding a small image is mostly Python-level work that holds the GIL (PIL releases it only inside
the codec), so a thread pool stops scaling near one core: on the H100 machine (16 cores) checking
CIFAR-10's 60,000 JPEGs and caching them took about 20 s each with 8 threads. Forked worker
processes scale with the cores. fork, not spawn: nothing is pickled but indices and results, and a
user's script is not imported again in each worker. The workers run PIL, numpy and torch's CPU
image ops with one thread each, as DataLoader's forked workers do (an OpenMP pool inherited through
fork must not be used), and never CUDA. Small jobs, one core and systems without fork use threads.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
MIN_FOR_PROCESSES = 2000  # below this, starting processes costs more than it saves
_work: Callable[[int], object] | None = None  # what forked workers run: set before they fork
_one_at_a_time = threading.Lock()


def map_indices(work: Callable[[int], T], count: int, workers: int | None = None) -> list[T]:
    """[work(0), ..., work(count - 1)], in order, on up to ``workers`` cores (default: all)."""
    workers = workers or os.cpu_count() or 1
    if (count < MIN_FOR_PROCESSES or workers < 2 or "fork" not in multiprocessing.get_all_start_methods()
            or multiprocessing.current_process().daemon):  # a DataLoader worker may not start processes
        with ThreadPoolExecutor(max_workers=min(workers, 8)) as pool:
            return list(pool.map(work, range(count)))
    global _work
    with _one_at_a_time:
        _work = work
        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                     initializer=_one_thread_each) as pool:
                return list(pool.map(_run, range(count), chunksize=max(16, count // (workers * 8))))
        finally:
            _work = None


def _run(index: int):
    return _work(index)


def _one_thread_each() -> None:
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
