"""TrainConfig: the single source of every training knob, saved as JSON in the run folder.

Each field declares its default, help line, help panel and allowed values once (``option(...)``);
``zoo finetune``'s options and the checks in ``__post_init__`` are generated from these
declarations, so a new knob is one line here.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import TrainingError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("cosine", "step", "multistep", "onecycle", "none")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
CACHE_MODES = ("auto", "memory", "disk", "none")
PIPELINES = ("auto", "workers", "device", "gpu-decode")
FEATURE_CACHE = ("auto", "off")
AUGMENTS = ("auto", "none", "medium", "light", "strong", "cifar", "trivialaugment", "randaugment")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
FREEZE_PATTERN = re.compile(r"^(none|backbone|\d+)$")
EMA_PATTERN = re.compile(r"auto|off|0?\.\d+")

# Help panels of `zoo finetune --help`, in this order.
MODEL_DATA, OPTIMISATION, SCHEDULE, PIPELINE, HARDWARE, OUTPUT = (
    "Model & data", "Optimisation", "Schedule", "Augmentation & data pipeline", "Hardware", "Output")
PANELS = (MODEL_DATA, OPTIMISATION, SCHEDULE, PIPELINE, HARDWARE, OUTPUT)


def option(default: Any, help: str, panel: str, *, choices: tuple[str, ...] = (), low: float | None = None,  # noqa: A002
           high: float | None = None, above: float | None = None, below: float | None = None,
           pattern: re.Pattern | None = None, short: str = "", shown: str = "", hidden: bool = False,
           cli_name: str = "") -> Any:
    """A TrainConfig field: default, help text, panel, and the values it accepts.

    ``low``/``high`` are inclusive bounds, ``above``/``below`` exclusive ones; ``shown`` is how the
    default reads in --help when it is worked out at run time (e.g. "auto: 1e-3 for adam(w)");
    ``cli_name`` names the flag when it is not the field's name (--callback for callbacks).
    """
    meta = dict(help=help, panel=panel, choices=choices, low=low, high=high, above=above, below=below,
                pattern=pattern, short=short, shown=shown, hidden=hidden, cli_name=cli_name)
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    model: str = option("", "model name (zoo list)", MODEL_DATA)
    data: str = option("", "dataset name (zoo list --datasets) or a folder / .jsonl path", MODEL_DATA, short="-d")
    data_root: str | None = option(None, "folder holding named datasets", MODEL_DATA, shown="$ZOO_DATA_ROOT, then ~/.cache/zoo/datasets")
    val_ratio: float = option(0.2, "share held out for validation by layouts without a split", MODEL_DATA, above=0, below=1)
    image_size: int | None = option(None, "training and evaluation input size in pixels", MODEL_DATA, low=8, high=4096,
                                    shown="the model's own")
    resize: str = option("crop", "how an image becomes the model's square: crop (shorter side, centre crop) | "
                         "squash (whole image, stretched) | letterbox (whole image, black bars)", MODEL_DATA,
                         choices=("crop", "squash", "letterbox"))
    crop_pct: float | None = option(None, "with --resize crop: input size / resize size (1: the whole shorter side)",
                                    MODEL_DATA, low=0.05, high=1.0, shown="the model's, usually 0.875")
    task: str = option("auto", "single | multi (several labels per image: sigmoid outputs, BCE loss, mAP)", MODEL_DATA,
                       choices=("auto", "single", "multi"), shown="auto: multi when an image has other than one label")
    limit_train: int | None = option(None, "train on at most N images, drawn stratified (a quick first run)",
                                     MODEL_DATA, low=1, shown="all")
    limit_val: int | None = option(None, "validate on at most N images, drawn stratified", MODEL_DATA, low=1,
                                   shown="all")
    weights: str | None = option(None, "DEFAULT (published weights), a weights file or a run folder", MODEL_DATA,
                                 shown="random init")
    new_head: bool = option(False, "--weights has another class count: keep its body, train a new head", MODEL_DATA)
    freeze: str = option("none", "none | backbone | N (first N stages)", MODEL_DATA, pattern=FREEZE_PATTERN)
    unfreeze_at: int | None = option(None, "epoch (0-based) at which a frozen body starts training", MODEL_DATA, low=0,
                                     shown="never")

    epochs: int = option(10, "epochs to train", OPTIMISATION, low=1, high=100_000)
    batch_size: int | None = option(None, "images per step", OPTIMISATION, low=1, high=1 << 20,
                                    shown="auto: 64, smaller for small datasets (>= 40 steps an epoch, >= 8)")
    optimizer: str = option("adamw", "sgd | adam | adamw", OPTIMISATION, choices=OPTIMIZERS)
    lr: float | None = option(None, "peak learning rate", OPTIMISATION, above=0, high=1e6,
                              shown="0.1 x batch/256 for sgd, 1e-3 for adam(w)")
    weight_decay: float | None = option(None, "weight decay", OPTIMISATION, low=0, high=10,
                                        shown="auto: 0.05 for adamw, 1e-4 for sgd and adam")
    momentum: float = option(0.9, "sgd momentum", OPTIMISATION, low=0, below=1)
    nesterov: bool = option(False, "Nesterov momentum (sgd)", OPTIMISATION)
    label_smoothing: float | None = option(None, "label smoothing of the cross-entropy loss", OPTIMISATION, low=0,
                                           below=1, shown="auto: 0.1")
    accumulate_steps: int = option(1, "micro-batches per optimizer step (same effective batch, less memory)",
                                   OPTIMISATION, low=1, high=1024)
    grad_clip: float | None = option(None, "clip the gradient norm to this", OPTIMISATION, above=0, shown="off")
    body_lr_scale: float = option(0.1, "body learning rate = lr x this, with --freeze/--unfreeze-at", OPTIMISATION,
                                  above=0, high=100)
    seed: int = option(0, "seed of initial weights, split, order and augmentation", OPTIMISATION, low=0, high=2**31 - 1)

    scheduler: str = option("cosine", "cosine | step | multistep | onecycle | none", SCHEDULE, choices=SCHEDULERS)
    warmup_epochs: float | None = option(None, "linear warmup, in epochs", SCHEDULE, low=0, high=10_000,
                                         shown="auto: 5 % of the epochs, at most 2")
    warmup_steps: int = option(0, "linear warmup, in steps (wins over --warmup-epochs)", SCHEDULE, low=0)
    step_size: int = option(7, "epochs between decays (step)", SCHEDULE, low=1)
    gamma: float = option(0.1, "decay factor (step, multistep)", SCHEDULE, above=0, high=1)
    milestones: list[int] = option([], "epochs at which multistep decays, e.g. 30,60", SCHEDULE, low=1)
    class_weights: str = option("auto", "weigh the loss by class: auto | none | effective | inverse | FILE (a JSON "
                                "list, one weight per class)", OPTIMISATION,
                                shown="auto: effective-number weights when the largest class has > 5x the smallest")
    sampler: str = option("auto", "order of training images: auto | shuffle | balanced (each class drawn equally)",
                          PIPELINE, choices=("auto", "shuffle", "balanced"), shown="auto: shuffle")
    select_metric: str = option("auto", "what the best checkpoint is best at: auto | top1 | balanced_accuracy | "
                                "macro_f1 | map (multi-label)", OPTIMISATION,
                                choices=("auto", "top1", "balanced_accuracy", "macro_f1", "map"),
                                shown="auto: map for multi-label, balanced_accuracy when imbalanced, else top1")
    threshold: float = option(0.5, "multi-label: the probability from which a class is predicted (F1, precision, "
                              "recall, exact match; per-class thresholds tuned on val are saved too)", OPTIMISATION,
                              above=0, below=1)
    ema: str = option("auto", "exponential moving average of the weights, evaluated and kept in checkpoints: "
                      "auto | off | DECAY (e.g. 0.999)", OPTIMISATION, pattern=EMA_PATTERN, shown="auto: see the start-up line")
    mixup: float | None = option(None, "MixUp alpha (0: off)", OPTIMISATION, low=0, high=10, shown="auto: 0")
    cutmix: float | None = option(None, "CutMix alpha (0: off); with --mixup each batch gets one of them",
                                  OPTIMISATION, low=0, high=10, shown="auto: 0")
    patience: int | None = option(None, "stop when val top-1 has not improved for this many epochs", SCHEDULE, low=1,
                                  shown="off")

    augment: str = option("auto", "auto | none | medium | light | strong | cifar | trivialaugment | randaugment",
                          PIPELINE, choices=AUGMENTS,
                          shown="auto: cifar at <= 64 px, else by run (see the start-up line)")
    cache: str = option("auto", "decode-once image cache: auto | memory | disk (kept under ~/.cache/zoo/decoded and "
                        "reused) | none", PIPELINE, choices=CACHE_MODES, shown="auto: in memory when it fits --cache-budget")
    cache_budget: str | None = option(None, "memory the decode-once cache may take with --cache auto, e.g. 16GiB or "
                                      "500MB", PIPELINE, shown="4GiB ($ZOO_CACHE_BUDGET)")
    pipeline: str = option("auto", "augment per image in DataLoader workers, or whole cached batches on the device, "
                           "or (no cache) decode JPEGs on the GPU and augment there: auto | workers | device | "
                           "gpu-decode", PIPELINE, choices=PIPELINES, shown="auto: device when cached")
    feature_cache: str = option("auto", "head-only training without augmentation computes backbone features once: "
                                "auto | off", PIPELINE, choices=FEATURE_CACHE)
    workers: int | None = option(None, "DataLoader worker processes", PIPELINE, low=0, high=256,
                                 shown="by device and CPU cores")

    device: str = option("auto", "auto | cpu | cuda | cuda:N | mps", HARDWARE, pattern=DEVICE_PATTERN,
                         shown="auto: cuda > mps > cpu")
    precision: str = option("auto", "auto | bf16 | fp16 | fp32", HARDWARE, choices=PRECISIONS,
                            shown="auto: bf16 on CUDA and on CPUs with native bf16, fp32 elsewhere")
    channels_last: bool | None = option(None, "channels-last memory format", HARDWARE, shown="on for CUDA and CPU")
    compile: bool | None = option(None, "torch.compile the model", HARDWARE,
                                  shown="on for CUDA runs long enough to repay the warm-up, off on CPU")

    output: str | None = option(None, "run folder", OUTPUT, short="-o", shown="runs/<model>-<data>-<time>")
    overwrite: bool = option(False, "replace a finished run in --output (the old one stays whole until the new "
                             "one's first epoch is saved)", OUTPUT)
    quiet: bool = option(False, "no progress bar or epoch lines; print only the result", OUTPUT, short="-q")
    log_every: float | None = option(None, "off a terminal (logs, CI, nohup): a progress line at most this often, "
                                     "in seconds", OUTPUT, low=1, high=86_400, shown="30 ($ZOO_LOG_EVERY)")
    tensorboard: bool = option(False, "write losses, accuracies, lr and images/s per epoch to <run>/tensorboard "
                               "(pip install 'zoo[tensorboard]')", OUTPUT)
    callbacks: list[str] = option([], "training callback from a plugin, NAME or NAME:key=value,... (repeatable; "
                                  "`zoo plugins` lists them), e.g. mlflow:tracking_uri=http://127.0.0.1:5000",
                                  OUTPUT, cli_name="callback")
    max_steps_per_epoch: int | None = option(None, "cut epochs short (smoke runs)", OUTPUT, low=1, hidden=True)

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            _check_field(f, hints[f.name], getattr(self, f.name))

    @property
    def effective_lr(self) -> float:
        if self.lr is not None:
            return self.lr
        return 0.1 * (self.batch_size or 64) * self.accumulate_steps / 256 if self.optimizer == "sgd" else 1e-3

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TrainingError(f"unknown config keys {', '.join(unknown)}; see `zoo finetune --help`")
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """Read a .toml or .json config; explicit overrides win."""
        path = Path(path)
        if not path.is_file():
            raise TrainingError(f"config file {path} does not exist")
        try:
            values = tomllib.loads(path.read_text()) if path.suffix == ".toml" else json.loads(path.read_text())
        except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise TrainingError(f"config file {path} is not valid ({exc})") from exc
        except RecursionError:
            raise TrainingError(f"config file {path} is nested too deeply to be a config; fix it") from None
        if not isinstance(values, dict):
            raise TrainingError(f"config file {path} must hold a table of options")
        values = values.get("train", values)
        if not isinstance(values, dict):
            raise TrainingError(f"config file {path}: [train] must be a table of options, not {type(values).__name__}")
        return cls.from_dict({**values, **{k: v for k, v in overrides.items() if v is not None}})


def value_type(hint: Any) -> Any:
    """``int | None`` -> int; other hints as they are."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _check_field(f: dataclasses.Field, hint: Any, value: Any) -> None:
    """One option's value against its declaration; the message names the option and what it accepts."""
    meta = f.metadata
    flag = "--" + (meta.get("cli_name") or f.name).replace("_", "-")
    if value is None and type(None) in typing.get_args(hint):
        return
    base = value_type(hint)
    kind = typing.get_origin(base) or base
    if kind is list:
        item_type = (typing.get_args(base) or (int,))[0]
        if item_type is str:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise TrainingError(f"{flag} takes a list of names, e.g. [\"mlflow\"]; got {value!r}")
            return
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise TrainingError(f"{flag} takes whole numbers, e.g. 30,60; got {value!r}")
        for item in value:
            _check_range(flag, item, meta)
        return
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TrainingError(f"{flag} takes {'a whole number' if kind is int else 'a ' + kind.__name__}, got {value!r}")
    if meta.get("choices") and value not in meta["choices"]:
        raise TrainingError(f"unknown {f.name} {value!r}; use one of {', '.join(meta['choices'])}")
    if meta.get("pattern") is not None and not meta["pattern"].fullmatch(str(value)):
        raise TrainingError(f"{flag} {value!r} is not valid; use {meta['help'].split(' (')[0]}")
    if kind in (int, float):
        _check_range(flag, value, meta)


def _check_range(flag: str, value: float, meta: Any) -> None:
    low, high, above, below = meta.get("low"), meta.get("high"), meta.get("above"), meta.get("below")
    ok = ((low is None or value >= low) and (high is None or value <= high)
          and (above is None or value > above) and (below is None or value < below))
    if not ok:
        lower = f">= {low:g}" if low is not None else f"> {above:g}" if above is not None else ""
        upper = f"<= {high:g}" if high is not None else f"< {below:g}" if below is not None else ""
        allowed = " and ".join(x for x in (lower, upper) if x)
        raise TrainingError(f"{flag} {value:g} is out of range; it must be {allowed}")
