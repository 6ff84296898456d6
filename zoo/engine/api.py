"""zoo.finetune(): names to objects, then the engine's fit().

Resolving names is the caller's job, as nanoGPT's loop knows nothing of where its model came
from: this module turns a model name, a dataset name or path and options into a model, an
ImageDataset, a Preprocessing and a TrainConfig, checks what only names can tell (weights for
another class count, an image size the model cannot take, a frozen random backbone), and calls fit.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.engine.config import TrainConfig
from zoo.engine.loop import fit
from zoo.engine.memory import probe
from zoo.engine.plan import RunPlan, dry_run_target, plan_run
from zoo.engine.setup import RunResult
from zoo.errors import TrainingError
from zoo.runs import LAST

log = logging.getLogger("zoo.engine")

# What a resumed run keeps from its first start: another value would make it a different run.
FIXED_ON_RESUME = ("model", "task", "image_size", "resize", "crop_pct", "val_ratio", "seed", "optimizer", "freeze", "limit_train",
                   "limit_val")


def finetune(
    model: str | None = None,
    data: str | None = None,
    config: str | Path | TrainConfig | None = None,
    resume: str | Path | None = None,
    dry_run: bool = False,
    **options: Any,
) -> RunResult | RunPlan:
    """Fine-tune a registered model on a dataset name or path.

        zoo.finetune(model="resnet18", data="hymenoptera", epochs=5, freeze="backbone")

    ``config`` is a TrainConfig or a .toml/.json file; keyword options override it. With
    ``resume`` (a run folder, or "latest") the run continues from its last finished epoch;
    passing ``epochs`` then extends it. ``callbacks`` mixes names of plugin callbacks ("mlflow:experiment=x",
    kept in the run's config) and objects with zoo.Callback's hooks. ``dry_run`` returns the RunPlan (model, data, pipeline,
    parameters, optimizer, schedule, device, run folder) and writes nothing. To train your own
    ``nn.Module`` or dataset, call ``zoo.fit(model, dataset, TrainConfig(...))``.
    """
    given = options.get("callbacks") or []
    callbacks = [c for c in given if not isinstance(c, str)]  # objects; names go to the config (and resume)
    if "callbacks" in options:
        options["callbacks"] = [c for c in given if isinstance(c, str)]
    resume = resume if dry_run else elastic_resume(resume, options.get("output"))
    cfg = resolve_config(model, data, config, resume, options)
    net, dataset, preprocessing, classifier = build_for(cfg, fresh=resume is None)
    if dry_run:
        run = dry_run_target(cfg, cfg.model, dataset.name, resume)
        return plan_run(net, dataset, cfg, preprocessing, classifier, cfg.model, run, resume is not None,
                        estimate_time=True)
    return fit(net, dataset, cfg, preprocessing, classifier=classifier, model_name=cfg.model, resume=resume,
               callbacks=callbacks)


def plan(model: str | None = None, data: str | None = None, config: str | Path | TrainConfig | None = None,
         resume: str | Path | None = None, **options: Any) -> RunPlan:
    """What `zoo.finetune(...)` with these arguments would do, decided exactly as the run decides it
    (`zoo finetune ... --dry-run`); nothing is written. ``plan(...).config`` is the run's config.json."""
    return finetune(model, data, config, resume, dry_run=True, **options)


def elastic_resume(resume: str | Path | None, output: str | None) -> str | Path | None:
    """torchrun --max-restarts starts every worker again, with the same arguments, after one was lost:
    the restarted workers continue the run from its last finished epoch instead of refusing its folder.
    A node that comes back is a fresh torchrun (restart count 0) while the others count 1 or more: the
    largest count over all processes decides, so every rank resumes or none does."""
    if resume is not None or not output or "TORCHELASTIC_RESTART_COUNT" not in os.environ:
        return resume
    from zoo.engine.distributed import DistributedContext

    restarts = DistributedContext.from_env().largest(int(os.environ["TORCHELASTIC_RESTART_COUNT"] or 0))
    if restarts == 0 or not (Path(output) / f"{LAST}.safetensors").is_file():
        return resume
    log.warning("torchrun restarted the workers (restart %d): %s continues from its last finished epoch",
                restarts, output)
    return output


def resolve_config(model, data, config, resume, options: dict[str, Any]) -> TrainConfig:
    given = {k: v for k, v in {"model": model, "data": data, **options}.items() if v is not None}
    if resume is not None:
        from zoo.runs import find_run

        run = find_run(resume)
        saved = run.read_config()
        changed = [k for k in FIXED_ON_RESUME if k in given and given[k] != saved.get(k)]
        if changed:
            key = changed[0]
            raise TrainingError(f"run {resume} was trained with {key} {saved.get(key)!r}, not {given[key]!r}; "
                                "resume it with what it was trained with, or start a new run (nothing was changed)")
        return TrainConfig.from_dict({**saved, **given, "output": str(run.final)})
    if isinstance(config, TrainConfig):
        cfg = TrainConfig.from_dict({**config.to_dict(), **given})
    elif config is not None:
        cfg = TrainConfig.from_file(config, **given)
    else:
        cfg = TrainConfig.from_dict(given)
    if not cfg.model:
        raise TrainingError("no model given; name one (`zoo list` shows them), e.g. zoo finetune resnet18 --data DATA")
    if not cfg.data:
        raise TrainingError("no --data given; pass a dataset name (`zoo list --datasets` shows them) or a folder")
    return cfg


def build_for(cfg: TrainConfig, fresh: bool):
    """(model, dataset, preprocessing, classifier attribute) for a config, checked against each other."""
    from zoo.data.api import create_dataset
    from zoo.models.api import create_model, model_info

    info = model_info(cfg.model)
    if str(cfg.weights).upper() == "DEFAULT" and info.weights is not None:
        from zoo.models.weights import published_weights_file

        published_weights_file(info)  # offline: the one line comes now, before the data is read and checked
    dataset = create_dataset(cfg.data, data_root=cfg.data_root, val_ratio=cfg.val_ratio, seed=cfg.seed)
    dataset = dataset.with_task(cfg.task).limited(cfg.limit_train, cfg.limit_val, cfg.seed)
    preprocessing = info.preprocessing(cfg.image_size).with_resize(cfg.resize, cfg.crop_pct)
    torch.manual_seed(cfg.seed)  # the same seed gives the same initial weights
    model = create_model(cfg.model, num_classes=dataset.num_classes, weights=cfg.weights)
    if fresh:
        check_head_fits(cfg, model, dataset)
        warn_large_from_scratch(cfg, model, info)
        if cfg.freeze != "none" and getattr(model, "zoo_load_report", None) is None:
            log.warning("warning: --freeze %s without --weights freezes randomly initialised layers: their features "
                        "are random (pass --weights DEFAULT or a file to fine-tune learned features)", cfg.freeze)
    probe(model, preprocessing.input_size, cfg.model, info.input_size)  # a size the model cannot take: one line now
    return model, dataset, preprocessing, info.classifier


LARGE_MODEL = 20_000_000  # parameters: from random init on a few thousand images, hours for little


def warn_large_from_scratch(cfg: TrainConfig, model: nn.Module, info) -> None:
    """Say plainly that a large model with published weights is about to learn from random init."""
    if cfg.weights or not info.has_pretrained:
        return
    parameters = sum(p.numel() for p in model.parameters())
    if parameters >= LARGE_MODEL:
        log.warning("warning: %s has %.0f M parameters and trains from random init here, which takes long and needs "
                    "much data; to fine-tune its published weights instead: --weights DEFAULT --freeze backbone (see "
                    "examples/food20_resnet152_frozen.sh)", cfg.model, parameters / 1e6)


def check_head_fits(cfg: TrainConfig, model: nn.Module, dataset) -> None:
    """A weights file whose head was trained for other classes is a mistake unless asked for."""
    report = getattr(model, "zoo_load_report", None)
    if report is None or not report.dropped or str(cfg.weights).upper() == "DEFAULT" or cfg.new_head:
        return  # published weights always get a new head for the dataset's classes
    raise TrainingError(
        f"--weights {cfg.weights} has a head for another number of classes than {dataset.name} "
        f"({dataset.num_classes}); pass --new-head to keep its body and train a new head"
    )
