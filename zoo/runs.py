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
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from zoo.errors import TrainingError, ZooError
from zoo.files import atomic_write_json, read_json
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
        self.final = Path(path)
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
        return (self.final / MARKER).is_file() or ((self.final / CONFIG).is_file() and
                                                   (self.final / f"{LAST}.safetensors").is_file())

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
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.path = self.final.parent / f".{self.final.name}.staging-{os.getpid()}"
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir()
        atomic_write_json(self.path / MARKER, {"format": 1})

    @property
    def staged(self) -> bool:
        return self.path != self.final

    def promote(self) -> None:
        """Swap the staging folder into the final place (the first checkpoint is in it)."""
        if not self.staged:
            return
        old = self.final.parent / f".{self.final.name}.old-{os.getpid()}"
        if self.final.exists():
            os.replace(self.final, old)
        os.replace(self.path, self.final)
        self.path = self.final
        shutil.rmtree(old, ignore_errors=True)

    def abandon_staging(self) -> None:
        """The run failed before its first checkpoint: nothing of it stays."""
        if self.staged:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = self.final

    def clean_stale(self) -> None:
        """Remove what killed runs left (staging folders, half-written resume states); put back an
        old run that a kill caught between the two renames of ``promote``."""
        parent, name = self.final.parent, self.final.name
        if not parent.is_dir():
            return
        olds = sorted(parent.glob(f".{name}.old-*"))
        if olds and not self.final.exists():
            os.replace(olds.pop(), self.final)
        for leftover in [*olds, *parent.glob(f".{name}.staging-*")]:
            shutil.rmtree(leftover, ignore_errors=True)
        if self.final.is_dir():
            for leftover in self.final.glob(".resume-*"):
                if leftover.name != ".resume-old":
                    shutil.rmtree(leftover, ignore_errors=True)

    # -- one process at a time ----------------------------------------------------------------------------------
    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the run exclusively while the block runs; a second process is refused naming the holder."""
        with exclusive_lock(self.final.parent / f".{self.final.name}.lock", f"run {self.final}"):
            yield

    # -- latest -------------------------------------------------------------------------------------------------
    def point_latest(self) -> None:
        """Make runs/latest name this run, unless `latest` is something zoo did not make."""
        latest = self.final.parent / LATEST
        if latest.exists() and not latest.is_symlink():
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


def new_run_name(model: str, data: str, root: Path = RUNS_ROOT) -> RunFolder:
    """runs/<model>-<data>-<time>, with -2, -3 ... for runs started within the same second."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = root / f"{_safe(model)}-{_safe(data)}-{stamp}"
    candidate, n = base, 1
    while candidate.exists() or any(root.glob(f".{candidate.name}.staging-*")):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return RunFolder(candidate)


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


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in Path(str(text)).name)


@contextmanager
def exclusive_lock(lock_file: Path, what: str) -> Iterator[None]:
    """An flock on ``lock_file`` (created, and removed on release); the kernel drops it when the process
    dies, so a killed run never leaves a run locked."""
    try:
        import fcntl
    except ModuleNotFoundError:  # not POSIX: no locking
        yield
        return
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise TrainingError(f"{what} is in use by another zoo process (pid {holder}); wait for it to "
                                "finish or choose another --output") from None
        # the holder before us may have removed the file after we opened it: lock the file that is there
        if os.path.exists(lock_file) and os.stat(lock_file).st_ino == os.fstat(fd).st_ino:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.unlink(lock_file)
        os.close(fd)


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
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**{k: v for k, v in values.items() if k in known},
                      "preprocessing": Preprocessing.from_dict(values["preprocessing"], source)})

    @classmethod
    def load(cls, path: Path) -> CheckpointMeta:
        return cls.from_dict(read_json(path, "checkpoint metadata"), f"checkpoint metadata {path}")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
