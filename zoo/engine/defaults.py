"""`auto` options resolved to concrete values before a run starts: printed in one line and saved in
config.json, so a run's folder says exactly what trained it.

The choices come from benchmarks/quality.py (seed recipes vs zoo's defaults, same epochs):
  augment          cifar (pad-crop + flip) at <= 64 px. Above that, a run from scratch shorter than
                   SHORT_RUN epochs gets "medium" (RandomResizedCrop keeping >= 35 % of the image):
                   ImageNet's crop ("light", 8-100 %) is made for hundreds of epochs on a million
                   images and keeps a few thousand images from being fitted in 30 epochs. Fine-tuning
                   published weights and long runs get "light".
  batch_size       64, or less for a small dataset so an epoch still has MIN_STEPS steps (a power of
                   two, at least MIN_BATCH): the seeds trained a few hundred images at batch 4 and got
                   hundreds of steps where batch 64 gives a handful.
  label_smoothing  LABEL_SMOOTHING: softer targets, better calibrated and usually a point or two better.
  weight_decay     ADAMW_WEIGHT_DECAY for AdamW, whose decay is decoupled from the gradient (the value
                   DeiT and ConvNeXt train with; 1e-4 barely regularises there: hymenoptera from scratch
                   0.712 -> 0.739), COUPLED_WEIGHT_DECAY for SGD and Adam.
  warmup_epochs    a short linear warmup (WARMUP share of the run, at most WARMUP_MAX epochs): AdamW's
                   first steps from random init are the least stable.
"""

from __future__ import annotations

from dataclasses import replace

from zoo.data.check import IMBALANCED, imbalance_ratio  # noqa: F401 - the run's rule is zoo data check's
from zoo.data.transforms import auto_preset
from zoo.engine.config import TrainConfig

MAX_BATCH, MIN_BATCH, MIN_STEPS = 64, 8, 40  # batch: at most 64, at least 8, else >= 40 steps an epoch
LABEL_SMOOTHING = 0.1
ADAMW_WEIGHT_DECAY, COUPLED_WEIGHT_DECAY = 0.05, 1e-4
WARMUP, WARMUP_MAX = 0.05, 2.0  # share of the epochs, cap in epochs
AUTO_EMA = "off"  # benchmarks/quality.py's EMA rows: see docs/fine-tuning.md
AUTO_CLASS_WEIGHTS = "effective"  # benchmarks/imbalance.py


def resolve_defaults(cfg: TrainConfig, image_size: int, train_images: int,
                     class_counts: list[int] | None = None, multi_label: bool = False) -> tuple[TrainConfig, list[str]]:
    """(the config with every `auto` made concrete, one phrase per value chosen)."""
    from zoo.errors import TrainingError

    if cfg.select_metric == "map" and not multi_label:
        raise TrainingError("--select-metric map ranks multi-label predictions; this data has one label per image "
                            "(use top1, balanced_accuracy or macro_f1, or --task multi)")
    changes, said = {}, []
    ratio = imbalance_ratio(class_counts)
    imbalanced = ratio > IMBALANCED
    if cfg.class_weights == "auto":
        changes["class_weights"] = AUTO_CLASS_WEIGHTS if imbalanced else "none"
        if imbalanced:
            said.append(f"class weights {AUTO_CLASS_WEIGHTS} (largest class {ratio:.0f}x the smallest)")
    if cfg.sampler == "auto":
        changes["sampler"] = "shuffle"
    if cfg.select_metric == "auto" and multi_label:
        changes["select_metric"] = "map"
        said.append("multi-label: best checkpoint by mAP")
    elif cfg.select_metric == "auto":
        changes["select_metric"] = "balanced_accuracy" if imbalanced else "top1"
        if imbalanced:
            said.append("best checkpoint by balanced accuracy")
    if cfg.batch_size is None:
        changes["batch_size"] = auto_batch_size(train_images)
        said.append(f"batch {changes['batch_size']} ({train_images} training images)")
    from_scratch = str(cfg.weights or "").lower() in ("", "none")
    if cfg.augment == "auto":
        changes["augment"], why = auto_preset(image_size, from_scratch, cfg.epochs)
        said.append(f"augment {changes['augment']} ({why})")
    if cfg.label_smoothing is None:
        changes["label_smoothing"] = LABEL_SMOOTHING
        said.append(f"label smoothing {LABEL_SMOOTHING}")
    if cfg.weight_decay is None:
        changes["weight_decay"] = ADAMW_WEIGHT_DECAY if cfg.optimizer == "adamw" else COUPLED_WEIGHT_DECAY
        said.append(f"weight decay {changes['weight_decay']:g}")
    if cfg.warmup_epochs is None:
        changes["warmup_epochs"] = 0.0 if cfg.warmup_steps else round(min(WARMUP_MAX, WARMUP * cfg.epochs), 2)
        said.append(f"warmup {changes['warmup_epochs']:g} epochs")
    if cfg.ema == "auto":
        changes["ema"] = AUTO_EMA
        said.append(f"ema {AUTO_EMA}")
    for name in ("mixup", "cutmix"):
        if getattr(cfg, name) is None:
            changes[name] = 0.0
    return replace(cfg, **changes), said


def auto_batch_size(train_images: int) -> int:
    batch = MAX_BATCH
    while batch > MIN_BATCH and train_images / batch < MIN_STEPS:
        batch //= 2
    return batch
