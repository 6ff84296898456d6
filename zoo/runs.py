"""The run folder: its name, its files, its lock, its staging, and the ``latest`` pointer.

    runs/<name>/.zoo-run                    marks a folder zoo made (zoo never writes into one without it)
    runs/<name>/config.json                 the TrainConfig
    runs/<name>/split.json                  the split zoo drew, for layouts without one
    runs/<name>/best.safetensors + .json    best weights by val top-1, with CheckpointMeta
    runs/<name>/last.safetensors + .json    weights after the last finished epoch
    runs/<name>/resume/                     optimizer/schedule/scaler state of the last finished epoch
    runs/<name>/metrics.jsonl, metrics.csv  one row per epoch
    runs/<name>/final_metrics.json          per-class accuracy and confusion matrix
    runs/<name>/curves.png, confusion_matrix.png
    runs/latest                             a symlink to the newest run with a checkpoint
    runs/.<name>.zoo-lock                   held (flock) by the process writing the run

A new run (or one that replaces another with --overwrite) is built in a hidden staging folder
beside its final place and swapped in once its first epoch is saved: until then an old run of the
same name is whole, and a run killed in its first epoch leaves nothing but a staging folder that
the next start removes. One process at a time holds a run folder (an exclusive lock, released on
any exit, even kill -9). Every file is written atomically (zoo.files). No torch here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
from collections.abc import Collection, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from zoo.errors import InUseError, TrainingError, ZooError
from zoo.files import atomic_write_json, read_json
from zoo.outputs import (LOCK_SUFFIX, as_folder, exclusive_lock, leftovers, new_staging, recover_interrupted_swap,
                         swap_in)
from zoo.specs import Preprocessing

log = logging.getLogger("zoo.runs")

RUNS_ROOT = Path("runs")
LATEST = "latest"
MARKER = ".zoo-run"
CONFIG = "config.json"
SPLIT = "split.json"
METRICS_JSONL = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
FINAL_METRICS = "final_metrics.json"
CURVES = "curves.png"
CONFUSION = "confusion_matrix.png"
RESUME = "resume"
TENSORBOARD = "tensorboard"
BEST, LAST = "best", "last"
MAX_CLASSES = 1_000_000


class RunFolder:
    """Paths of one run's files; ``path`` is where it is written now (its staging folder until promoted)."""

    def __init__(self, path: str | Path) -> None:
        self.final = as_folder(path)
        self.path = self.final

    def __repr__(self) -> str:
        return f"RunFolder({str(self.final)!r})"

    @property
    def name(self) -> str:
        return self.final.name

    def file(self, name: str) -> Path:
        return self.path / name

    def weights(self, which: str = BEST) -> Path:
        return self.path / f"{which}.safetensors"

    def meta_file(self, which: str = BEST) -> Path:
        return self.path / f"{which}.json"

    @property
    def resume_dir(self) -> Path:
        return self.path / RESUME

    # -- what is there ------------------------------------------------------------------------------------------
    def is_run(self) -> bool:
        """zoo made this folder (runs from before the marker existed: a config beside a checkpoint)."""
        return is_zoo_run(self.final)

    def has_checkpoint(self) -> bool:
        """At least one finished epoch: weights and a resumable state."""
        return (self.final / f"{LAST}.safetensors").is_file() and (
            (self.final / RESUME / "state.pt").is_file() or (self.final / ".resume-old" / "state.pt").is_file())

    def read_config(self) -> dict[str, Any]:
        config = read_json(self.final / CONFIG, "run config")
        if not isinstance(config, dict):
            raise ZooError(f"run config {self.final / CONFIG} is not an object; it is damaged")
        return config

    def write_json(self, name: str, obj: Any) -> None:
        atomic_write_json(self.path / name, obj)

    # -- starting a new run -------------------------------------------------------------------------------------
    def check_new_target(self, overwrite: bool) -> None:
        """Refuse to start a new run where it would lose something; nothing is written here."""
        final = self.final
        if final.exists() and not final.is_dir():
            raise TrainingError(f"{final} is a file, not a folder; choose another --output")
        if not final.exists() or not any(final.iterdir()):
            return
        if not self.is_run():
            raise TrainingError(f"{final} is a folder zoo did not make and it is not empty; zoo will not write "
                                "into it: choose another --output (or empty it)")
        if self.has_checkpoint() and not overwrite:
            raise TrainingError(f"{final} already holds a run; use --resume {final}, --overwrite or another --output")

    def begin_staging(self) -> None:
        """From now on files go to a hidden folder beside the final one (see ``promote``)."""
        self.path = new_staging(self.final, MARKER)

    @property
    def staged(self) -> bool:
        return self.path != self.final

    def promote(self) -> None:
        """Swap the staging folder into the final place (the first checkpoint is in it)."""
        if not self.staged:
            return
        swap_in(self.path, self.final)
        self.path = self.final

    def abandon_staging(self) -> None:
        """The run failed before its first checkpoint: nothing of it stays."""
        if self.staged:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = self.final

    def recover_interrupted_promote(self) -> None:
        """Put back an old run that a kill caught between the two renames of ``promote`` (before any check
        looks at the final place). Nothing is deleted here."""
        recover_interrupted_swap(self.final, MARKER)

    def clean_stale(self) -> None:
        """Remove what killed runs of this folder left: only folders zoo provably made (named by zoo's
        pattern with a pid, holding zoo's marker or nothing), and only once the run is allowed to start."""
        for leftover in [*self._leftovers("old"), *self._leftovers("staging")]:
            shutil.rmtree(leftover, ignore_errors=True)
        if self.final.is_dir() and self.is_run():
            for leftover in self.final.glob(".resume-*"):
                if _is_resume_leftover(leftover):
                    shutil.rmtree(leftover, ignore_errors=True)

    def _leftovers(self, kind: str) -> list[Path]:
        return leftovers(self.final, kind, MARKER)

    # -- one process at a time ----------------------------------------------------------------------------------
    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the run exclusively while the block runs; a second process is refused naming the holder."""
        with exclusive_lock(self.final.parent / f".{self.final.name}{LOCK_SUFFIX}", f"run {self.final}"):
            yield

    # -- latest -------------------------------------------------------------------------------------------------
    def point_latest(self) -> None:
        """Make runs/latest name this run, unless `latest` is something zoo did not make: a file, a folder,
        or a link to something that is not a zoo run."""
        latest = self.final.parent / LATEST
        if latest.is_symlink():
            target = Path(os.readlink(latest))
            target = target if target.is_absolute() else latest.parent / target
            ours = is_zoo_run(target) or (not target.exists() and target.parent.resolve() == latest.parent.resolve())
        else:
            ours = not latest.exists()
        if not ours:
            log.warning("not updating %s: it is not a link zoo made (rename it to let zoo point it at the newest run)",
                        latest)
            return
        tmp = self.final.parent / f".{LATEST}-{os.getpid()}"
        try:
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self.final.resolve(), target_is_directory=True)
            os.replace(tmp, latest)
        except OSError:
            tmp.unlink(missing_ok=True)  # no symlinks here: `latest` simply is not updated


def is_zoo_run(folder: Path) -> bool:
    """A folder with zoo's run marker (or, from before the marker, a config beside a checkpoint)."""
    return (folder / MARKER).is_file() or ((folder / CONFIG).is_file() and (folder / f"{LAST}.safetensors").is_file())


_RESUME_FILES = {"state.pt", "model.safetensors", "model.json"}


def _is_resume_leftover(folder: Path) -> bool:
    """A half-written resume state (tempfile.mkdtemp(prefix='.resume-') in zoo.engine.checkpoint): the
    mkdtemp name and nothing in it but resume files or their temporaries."""
    if not re.fullmatch(r"\.resume-[a-z0-9_]{8}", folder.name) or not folder.is_dir() or folder.is_symlink():
        return False
    return all(p.name in _RESUME_FILES or p.name.startswith((".state.pt.", ".model.")) for p in folder.iterdir())


def new_run_name(model: str, data: str, root: Path = RUNS_ROOT, taken: Collection[str] = ()) -> RunFolder:
    """runs/<model>-<data>-<time>, with -2, -3 ... for runs started within the same second."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = root / f"{_safe(model)}-{_safe(data)}-{stamp}"
    candidate, n = base, 1
    while (candidate.name in taken or candidate.exists() or any(root.glob(f".{candidate.name}.staging-*"))
           or (root / f".{candidate.name}{LOCK_SUFFIX}").exists()):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return RunFolder(candidate)


def claim_new_run(model: str, data: str, stack: ExitStack, root: Path = RUNS_ROOT) -> RunFolder:
    """A fresh run name, locked in ``stack``: runs started in the same second by several processes each
    get their own name (the one that loses a lock race takes the next)."""
    taken: set[str] = set()
    while True:
        run = new_run_name(model, data, root, taken)
        try:
            stack.enter_context(run.locked())
            return run
        except InUseError:
            if len(taken) >= 1000:
                raise
            taken.add(run.name)


def find_run(run: str | Path | None = None) -> RunFolder:
    """A run folder from a path, a name under runs/, or None/'latest' for runs/latest."""
    candidates = [RUNS_ROOT / LATEST] if run in (None, LATEST) else [Path(run), RUNS_ROOT / str(run)]
    for path in candidates:
        if (path / CONFIG).is_file():
            return RunFolder(path.resolve())
    if run in (None, LATEST):
        raise ZooError(f"no run at {candidates[0]}; train one with `zoo finetune` or name a run folder")
    raise ZooError(f"no run folder at {candidates[0]} (no {CONFIG} in it); train one with `zoo finetune` "
                   "or pass the folder `zoo finetune` wrote")


def _safe(text: str, limit: int = 60) -> str:
    """A name part for a run folder: letters, digits, - and _, short enough that the run's name with its
    time and zoo's staging suffix stays far below the 255 bytes a file name may have."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in Path(str(text)).name)[:limit]


def _check_task(values: dict[str, Any], num_classes: int, source: str) -> None:
    task, threshold, thresholds = (values.get("task", "single-label"), values.get("threshold", 0.5),
                                   values.get("thresholds", []))
    if task not in ("single-label", "multi-label"):
        raise ZooError(f"{source}: 'task' {task!r} is neither single-label nor multi-label")
    if not _probability(threshold):
        raise ZooError(f"{source}: 'threshold' {threshold!r} is not a probability between 0 and 1")
    if not isinstance(thresholds, list) or not all(map(_probability, thresholds)) or len(thresholds) not in (
            0, num_classes):
        raise ZooError(f"{source}: 'thresholds' must list one probability per class ({num_classes})")


def _probability(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1


@dataclass
class CheckpointMeta:
    """What travels with every checkpoint (<best|last>.json): enough to rebuild, preprocess and label."""

    model: str  # the registered name to rebuild it with, or the class name of a module trained from Python
    num_classes: int
    classes: list[str]
    preprocessing: Preprocessing
    dataset: dict[str, Any] = field(default_factory=dict)  # name, layout, eval_split, fingerprint
    training_inputs: dict[str, Any] = field(default_factory=dict)  # augment, pipeline
    run: str = ""
    epoch: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    per_class_accuracy: dict[str, float] = field(default_factory=dict)
    task: str = "single-label"  # or multi-label: sigmoid per class, labels where probability >= threshold
    threshold: float = 0.5  # multi-label: the one threshold predict uses unless asked for the tuned ones
    thresholds: list[float] = field(default_factory=list)  # multi-label: per class, tuned on val (best F1)

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["preprocessing"] = self.preprocessing.to_dict()
        return values

    @classmethod
    def from_dict(cls, values: Any, source: str = "checkpoint metadata") -> CheckpointMeta:
        """Read and check (types, ranges) what a .json beside a checkpoint says, naming ``source`` if wrong."""
        if not isinstance(values, dict):
            raise ZooError(f"{source} holds a {type(values).__name__}, not an object; it is damaged")
        missing = [k for k in ("model", "num_classes", "classes", "preprocessing") if k not in values]
        if missing:
            raise ZooError(f"{source} has no {', '.join(missing)}; use a checkpoint written by `zoo finetune`")
        model, num_classes, classes = values["model"], values["num_classes"], values["classes"]
        if not isinstance(model, str) or not model:
            raise ZooError(f"{source}: 'model' must be a model name, got {model!r}")
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or not 1 <= num_classes <= MAX_CLASSES:
            raise ZooError(f"{source}: 'num_classes' {num_classes!r} is not a class count from 1 to {MAX_CLASSES:,}")
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise ZooError(f"{source}: 'classes' must be a list of class names")
        if len(classes) != num_classes:
            raise ZooError(f"{source} names {len(classes)} classes but says num_classes {num_classes}")
        _check_task(values, num_classes, source)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**{k: v for k, v in values.items() if k in known},
                      "preprocessing": Preprocessing.from_dict(values["preprocessing"], source)})

    @classmethod
    def load(cls, path: Path) -> CheckpointMeta:
        return cls.from_dict(read_json(path, "checkpoint metadata"), f"checkpoint metadata {path}")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
