"""What a training run shows while it runs: a progress bar per epoch (zoo.progress) and one line per epoch.

Epoch lines go through the "zoo" logger; a library caller who configured no logging still sees
them (``fit`` attaches a stderr handler for the run unless ``quiet``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("zoo.engine")


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


def log_epoch(r, imbalanced: bool = False) -> None:
    """One EpochResult as one line."""
    if r.val_map is not None:  # multi-label
        log.info("epoch %d/%d  train loss %.4f exact %.3f | val loss %.4f mAP %.3f F1 %.3f macro-F1 %.3f exact %.3f | "
                 "%.0f img/s, %.1f s, data wait %.0f%%%s", r.epoch, r.epochs, r.train_loss, r.train_top1, r.val_loss,
                 r.val_map, r.val_micro_f1, r.val_macro_f1, r.val_exact_match, r.images_per_s, r.epoch_time_s,
                 100 * r.data_wait_frac, "  (best)" if r.improved else "")
        return
    balanced = f" bal-acc {r.val_balanced_accuracy:.3f} macro-F1 {r.val_macro_f1:.3f}" if imbalanced else ""
    log.info("epoch %d/%d  train loss %.4f top-1 %.3f | val loss %.4f top-1 %.3f top-5 %.3f%s | %.0f img/s, %.1f s, "
             "data wait %.0f%%%s", r.epoch, r.epochs, r.train_loss, r.train_top1, r.val_loss, r.val_top1, r.val_top5,
             balanced, r.images_per_s, r.epoch_time_s, 100 * r.data_wait_frac, "  (best)" if r.improved else "")
