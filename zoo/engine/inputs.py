"""From a dataset to the train/eval batches the loop iterates: cache, pipeline, loaders."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from zoo.data.dataset import ImageDataset
from zoo.data.dataset import ArrayImages, FileImages
from zoo.data.decoded_cache import CACHE_BUDGET_BYTES, CacheSpec, cache_size_bytes, decode_once, decode_once_to_disk
from zoo.data.loader import TransformedImages, default_workers, make_loader
from zoo.data.pipeline import CachedBatches, LoaderBatches, use_device_pipeline
from zoo.data.transforms import eval_transform, resolve_preset, scale_and_normalise, train_transform
from zoo.engine.config import TrainConfig
from zoo.errors import TrainingError

log = logging.getLogger("zoo.engine")


@dataclass
class Inputs:
    train: Any  # iterable of (images, labels) on the device, with len() in batches
    eval: Any
    train_images: int
    eval_images: int
    augment: str  # the resolved preset
    pipeline: str  # "device" or "workers"
    plain_train: Callable[[], Any]  # the train split in order, evaluation preprocessing (for feature caching)


def build_inputs(cfg: TrainConfig, dataset: ImageDataset, preprocessing: dict[str, Any], device: torch.device,
                 channels_last: bool, generator: torch.Generator, sampler_for) -> Inputs:
    """Decode once where it pays, then batches through workers or straight from the cache on the device.

    ``sampler_for(dataset)`` gives a DistributedSampler under torchrun, else None.
    """
    if cfg.pipeline == "device" and cfg.cache == "none":
        raise TrainingError("--pipeline device augments the decode-once cache; drop --cache none or use --pipeline workers")
    train_spec, eval_spec = CacheSpec.for_training(preprocessing), CacheSpec.for_evaluation(preprocessing)
    train_source, stored = _cached(cfg, dataset, "train", train_spec, force=cfg.pipeline == "device")
    eval_source, _ = _cached(cfg, dataset, dataset.eval_split_name, eval_spec, force=cfg.pipeline == "device")
    augment = resolve_preset(cfg.augment, preprocessing["input_size"])
    drop_last = len(train_source) > cfg.batch_size
    if use_device_pipeline(cfg.pipeline, stored):
        from zoo.data.batch_augment import BatchAugment

        # array datasets (CIFAR) come uncached: bring them to the caches' squares
        train_source, eval_source = decode_once(train_source, train_spec), decode_once(eval_source, eval_spec)
        train = CachedBatches.from_images(
            train_source, BatchAugment(preprocessing, augment), cfg.batch_size, device, True, generator=generator,
            sampler=sampler_for(train_source), drop_last=drop_last, channels_last=channels_last)
        plain = BatchAugment(preprocessing, augment, train=False)  # a centre crop to the input size, then scaling
        evals = CachedBatches.from_images(eval_source, plain, cfg.batch_size, device, False, channels_last=channels_last)

        def plain_train():
            return CachedBatches(train.items, train.labels, plain, cfg.batch_size, device, False,
                                 channels_last=channels_last)

        return Inputs(train, evals, len(train_source), len(eval_source), augment, "device", plain_train)
    workers = cfg.workers if cfg.workers is not None else default_workers(device)
    train_set = TransformedImages(train_source, train_transform(preprocessing, augment))
    eval_cached = isinstance(eval_source, ArrayImages) and eval_source.cache_spec == eval_spec  # already cropped
    eval_set = TransformedImages(eval_source, scale_and_normalise(preprocessing) if eval_cached
                                 else eval_transform(preprocessing))
    train = make_loader(train_set, cfg.batch_size, True, workers, device, generator, sampler_for(train_set), drop_last)
    evals = make_loader(eval_set, cfg.batch_size, False, workers, device)

    def plain_train():
        plain = TransformedImages(train_source, eval_transform(preprocessing))
        return LoaderBatches(make_loader(plain, cfg.batch_size, False, workers, device), device, channels_last)

    return Inputs(LoaderBatches(train, device, channels_last), LoaderBatches(evals, device, channels_last),
                  len(train_set), len(eval_set), augment, "workers", plain_train)


def _cached(cfg: TrainConfig, dataset: ImageDataset, split: str, spec: CacheSpec, force: bool):
    """(the split, decoded once as --cache says, or as it was; where its pixels live: "memory",
    "disk" (a memory-mapped cache file) or "files" (decoded every epoch))."""
    source = dataset.splits[split]
    if not isinstance(source, FileImages):
        return source, "disk" if isinstance(source.images, np.memmap) else "memory"
    if cfg.cache == "none":
        return source, "files"
    size = cache_size_bytes(source, spec.side)
    if cfg.cache != "disk" and not (force or cfg.cache == "memory" or size <= CACHE_BUDGET_BYTES):
        log.info("%s/%s stays as files: its %dx%d cache would take %.1f GB (over the %.0f GB budget; "
                 "--cache memory or disk to cache it anyway)", dataset.name, split, spec.side, spec.side,
                 size / 1e9, CACHE_BUDGET_BYTES / 1e9)
        return source, "files"
    t0 = time.perf_counter()
    cached = decode_once_to_disk(source, spec) if cfg.cache == "disk" else decode_once(source, spec)
    log.info("decoded %s/%s once into a %dx%d uint8 cache%s (%.1f s)", dataset.name, split, spec.side, spec.side,
             " on disk" if cfg.cache == "disk" else "", time.perf_counter() - t0)
    return cached, "disk" if cfg.cache == "disk" else "memory"
