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
from zoo.data.decoded_cache import CACHE_BUDGET_BYTES, cache_size_bytes, decode_once, decode_once_to_disk
from zoo.data.loader import TransformedImages, default_workers, make_loader
from zoo.data.pipeline import CachedBatches, LoaderBatches, use_device_pipeline
from zoo.data.transforms import eval_transform, resolve_preset, train_transform
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
    stored = _cache_splits(cfg, dataset, preprocessing["resize_size"], force=cfg.pipeline == "device")
    augment = resolve_preset(cfg.augment, preprocessing["input_size"])
    train_source, eval_source = dataset.train, dataset.eval
    drop_last = len(train_source) > cfg.batch_size
    if use_device_pipeline(cfg.pipeline, stored):
        from zoo.data.batch_augment import BatchAugment

        side = preprocessing["resize_size"]  # array datasets (CIFAR) may come at another size
        train_source, eval_source = decode_once(train_source, side), decode_once(eval_source, side)

        train = CachedBatches.from_images(
            train_source, BatchAugment(preprocessing, augment), cfg.batch_size, device, True, generator=generator,
            sampler=sampler_for(train_source), drop_last=drop_last, channels_last=channels_last)
        plain = BatchAugment(preprocessing, augment, train=False)
        evals = CachedBatches.from_images(eval_source, plain, cfg.batch_size, device, False, channels_last=channels_last)

        def plain_train():
            return CachedBatches(train.items, train.labels, plain, cfg.batch_size, device, False,
                                 channels_last=channels_last)

        return Inputs(train, evals, len(train_source), len(eval_source), augment, "device", plain_train)
    workers = cfg.workers if cfg.workers is not None else default_workers(device)
    train_set = TransformedImages(train_source, train_transform(preprocessing, augment))
    eval_set = TransformedImages(eval_source, eval_transform(preprocessing))
    train = make_loader(train_set, cfg.batch_size, True, workers, device, generator, sampler_for(train_set), drop_last)
    evals = make_loader(eval_set, cfg.batch_size, False, workers, device)

    def plain_train():
        plain = TransformedImages(train_source, eval_transform(preprocessing))
        return LoaderBatches(make_loader(plain, cfg.batch_size, False, workers, device), device, channels_last)

    return Inputs(LoaderBatches(train, device, channels_last), LoaderBatches(evals, device, channels_last),
                  len(train_set), len(eval_set), augment, "workers", plain_train)


def _cache_splits(cfg: TrainConfig, dataset: ImageDataset, side: int, force: bool) -> str:
    """Replace file-backed splits by their decode-once cache as --cache says; where the pixels now
    live: "memory", "disk" (a memory-mapped cache file) or "files" (decoded every epoch)."""
    for split, source in list(dataset.splits.items()):
        if not isinstance(source, FileImages) or cfg.cache == "none":
            continue
        t0 = time.perf_counter()
        if cfg.cache == "disk":
            dataset.splits[split] = decode_once_to_disk(source, side)
        elif force or cfg.cache == "memory" or cache_size_bytes(source, side) <= CACHE_BUDGET_BYTES:
            dataset.splits[split] = decode_once(source, side)
        else:
            log.info("%s/%s stays on disk as files: its %dx%d cache would take %.1f GB (over the %.0f GB budget; "
                     "--cache memory or disk to cache it anyway)", dataset.name, split, side, side,
                     cache_size_bytes(source, side) / 1e9, CACHE_BUDGET_BYTES / 1e9)
            continue
        log.info("decoded %s/%s once into a %dx%d uint8 cache%s (%.1f s)", dataset.name, split, side, side,
                 " on disk" if cfg.cache == "disk" else "", time.perf_counter() - t0)
    sources = dataset.splits.values()
    if any(isinstance(s, FileImages) for s in sources):
        return "files"
    return "disk" if any(isinstance(s, ArrayImages) and isinstance(s.images, np.memmap) for s in sources) else "memory"
