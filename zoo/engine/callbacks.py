"""Training opens here: the loop calls a list of callbacks at fixed points with typed results.

A callback is any object with some of these methods (all optional; subclass ``Callback`` for the
signatures):

    on_fit_start(plan)            the RunPlan the run executes (what `zoo finetune --dry-run` prints)
    on_epoch_end(result)          an EpochResult: every metric of the epoch, typed
    on_checkpoint(path, meta)     a checkpoint file was written (best or last), with its CheckpointMeta
    on_fit_end(result)            the RunResult
    on_exception(exc)             the run failed (or was interrupted); the last good checkpoint is kept

zoo's own checkpoint writing, metrics files, TensorBoard, console line and early stopping are the
first callbacks in the list (zoo.engine.writers). A callback ends the run after the current epoch
by raising ``StopTraining``. A user's or plugin's callback that raises anything else is switched off
with one warning naming it, and training goes on: nothing is lost. Plugins add callbacks through the
``zoo.callbacks`` entry point (``ctx.add_callback``); `--callback NAME[:key=value,...]` selects them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import TrainingError

log = logging.getLogger("zoo.engine")
HOOKS = ("on_fit_start", "on_epoch_end", "on_checkpoint", "on_fit_end", "on_exception")


class StopTraining(Exception):
    """Raised by a callback (from on_epoch_end) to end the run after this epoch; the message says why."""


class Callback:
    """Base class with every hook doing nothing; override the ones you need."""

    def on_fit_start(self, plan) -> None: ...

    def on_epoch_end(self, result: EpochResult) -> None: ...

    def on_checkpoint(self, path: Path, meta) -> None: ...

    def on_fit_end(self, result) -> None: ...

    def on_exception(self, exc: BaseException) -> None: ...


def metric(default: Any = 0.0) -> Any:
    """A field of EpochResult that is a per-epoch scalar: metrics.jsonl/csv, TensorBoard and trackers log it."""
    return field(default=default, metadata={"metric": True})


@dataclass
class EpochResult:
    """One finished epoch, as every consumer sees it (no hand-kept key lists: ``metrics()`` is the row)."""

    epoch: int = metric(0)  # 1-based
    train_loss: float = metric()
    train_top1: float = metric()  # with MixUp/CutMix: agreement with the dominant label of each mixed image
    val_loss: float = metric()
    val_top1: float = metric()
    val_top5: float = metric()
    val_balanced_accuracy: float = metric()  # mean recall over the classes
    val_macro_f1: float = metric()
    val_map: float | None = metric(None)  # multi-label: mean average precision over the classes
    val_micro_f1: float | None = metric(None)  # multi-label, at --threshold
    val_exact_match: float | None = metric(None)  # multi-label: share of images whose label set is exactly right
    lr: float = metric()
    images_per_s: float = metric()  # training images per second, all processes together
    epoch_time_s: float = metric()
    data_wait_frac: float = metric()  # share of the epoch spent waiting for the next batch
    peak_gpu_mem_mb: float = metric()
    elapsed_s: float = metric()  # since fit() began: data loading and warm-up included
    images: int = metric(0)
    compiled_graphs: int | None = metric(None)  # torch.compile graphs so far (more after epoch 1: recompiles)
    epochs: int = 0  # of the run
    improved: bool = False  # best so far by the run's --select-metric (best.safetensors is this epoch's)
    best_top1: float = 0.0  # the best value of the selection metric (val top-1 unless --select-metric says)
    best_epoch: int = 0
    per_class_accuracy: list[float] = field(default_factory=list)
    confusion_matrix: list[list[int]] = field(default_factory=list)  # single-label only
    multilabel: dict[str, Any] = field(default_factory=dict)  # per_class_ap, tp/fp/fn, tuned_thresholds

    @classmethod
    def metric_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.metadata.get("metric")]

    def metrics(self) -> dict[str, float]:
        """The scalar row of this epoch (None-valued metrics left out)."""
        return {name: getattr(self, name) for name in self.metric_names() if getattr(self, name) is not None}


class CallbackList:
    """Calls each hook on each callback in order. ``essential`` callbacks (zoo's checkpoint writer) may
    fail the run; any other that raises is switched off with a warning, and the run goes on."""

    def __init__(self, callbacks: list[Any], essential: tuple[Any, ...] = ()) -> None:
        self.callbacks = list(callbacks)
        self.essential = {id(c) for c in essential}

    def __iter__(self):
        return iter(self.callbacks)

    def call(self, hook: str, *args: Any) -> str | None:
        """Run ``hook`` on every callback; the first StopTraining's reason, if one asked to stop."""
        stop = None
        for callback in list(self.callbacks):
            method = getattr(callback, hook, None)
            if method is None:
                continue
            try:
                method(*args)
            except StopTraining as request:
                stop = stop or f"{callback_name(callback)}: {request}"
            except Exception as exc:  # noqa: BLE001 - a user's callback may fail in any way
                if id(callback) in self.essential:
                    raise
                self.callbacks.remove(callback)
                first_line = (str(exc).splitlines() or [""])[0][:200]
                log.warning("warning: callback %s failed in %s (%s: %s); it is switched off, training goes on",
                            callback_name(callback), hook, type(exc).__name__, first_line)
        return stop


def callback_name(callback: Any) -> str:
    return getattr(callback, "zoo_name", None) or type(callback).__name__


# -- callbacks from plugins, by name -----------------------------------------------------------------------------
def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """'mlflow:tracking_uri=http://127.0.0.1:5000,experiment=zoo' -> ('mlflow', {...}); values that read as
    JSON (numbers, true/false) become those, the rest stay strings."""
    name, _, rest = spec.partition(":")
    options: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TrainingError(f"--callback {spec!r}: options are key=value, separated by commas "
                                "(e.g. mlflow:tracking_uri=http://127.0.0.1:5000)")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    if not name.strip():
        raise TrainingError(f"--callback {spec!r} names no callback; `zoo plugins` lists them")
    return name.strip(), options


def create_callback(spec: str) -> Any:
    """The callback a plugin registered under the spec's name, made with the spec's options."""
    from zoo.errors import UnknownNameError
    from zoo.registry.core import get_registry
    from zoo.specs import resolve_callable

    name, options = parse_spec(spec)
    registry = get_registry()
    registry.ensure_loaded("zoo.callbacks")
    try:
        source = registry.callbacks.get(name)
    except UnknownNameError as exc:
        raise TrainingError(str(exc)) from None
    owner = registry.callbacks.owner(name)
    try:
        callback = resolve_callable(source)(**options)
    except TypeError as exc:
        raise TrainingError(f"callback {name} (from {owner}) does not take those options ({exc})") from exc
    except Exception as exc:  # noqa: BLE001 - a plugin's callback may fail to build in any way
        raise TrainingError(f"callback {name} (from {owner}) could not be made: {type(exc).__name__}: "
                            f"{(str(exc).splitlines() or [''])[0]}") from exc
    callback.zoo_name = name
    return callback


def register(ctx) -> None:
    """zoo's own named callbacks (entry point zoo.callbacks), registered as a third party's are."""
    ctx.add_callback("tensorboard", "zoo.engine.writers:TensorBoard")
