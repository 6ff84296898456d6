"""From a dataset to the train/eval batches a training loop iterates: cache, pipeline, loaders."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from zoo.data.dataset import ArrayImages, FileImages, ImageDataset
from zoo.data.decoded_cache import (CACHE_BUDGET_BYTES, CacheSpec, cache_size_bytes, decode_once, decode_once_to_disk,
                                   format_size)
from zoo.data.loader import TransformedImages, default_workers, make_loader
from zoo.data.pipeline import CachedBatches, LoaderBatches, use_device_pipeline
from zoo.data.transforms import eval_transform, resolve_preset, scale_and_normalise, train_transform
from zoo.errors import DataError
from zoo.specs import Preprocessing

log = logging.getLogger("zoo.data")


@dataclass(frozen=True)
class InputOptions:
    """How batches are made: the TrainConfig options the input pipeline reads."""

    batch_size: int = 64
    augment: str = "auto"  # a preset of zoo.data.transforms
    cache: str = "auto"  # auto | memory | disk | none
    pipeline: str = "auto"  # auto | workers | device
    workers: int | None = None  # DataLoader workers (default: by device and cores)
    channels_last: bool = False
    cache_budget: int = CACHE_BUDGET_BYTES  # bytes a decode-once cache may take in memory (auto)
    seed: int = 0  # streamed shards: the order and augmentation draws of each epoch


@dataclass
class Inputs:
    train: Any  # iterable of (images, labels) on the device, with len() in batches
    eval: Any
    train_images: int
    eval_images: int
    augment: str  # the resolved preset
    pipeline: str  # "device" or "workers"
    plain_train: Callable[[], Any]  # the train split in order, evaluation preprocessing (for feature caching)


def build_inputs(dataset: ImageDataset, preprocessing: Preprocessing, options: InputOptions, device: torch.device,
                 generator: torch.Generator, sampler_for=lambda source: None) -> Inputs:
    """Decode once where it pays, then batches through workers or straight from the cache on the device.

    ``sampler_for(dataset)`` gives a DistributedSampler under torchrun, else None.
    """
    opts, channels_last = options, options.channels_last
    from zoo.data.shards import stream_inputs, uses_shards

    if uses_shards(dataset):
        return stream_inputs(dataset, preprocessing, opts, device)
    if opts.pipeline == "gpu-decode":
        if all(isinstance(dataset.splits[s], FileImages) for s in ("train", dataset.eval_split_name)):
            return _gpu_decode_inputs(dataset, preprocessing, opts, device, generator, sampler_for)
        log.info("--pipeline gpu-decode reads image files; %s is in memory, so it is augmented on the device",
                 dataset.name)
        opts = replace(opts, pipeline="device")
    if opts.pipeline == "device" and opts.cache == "none":
        raise DataError("--pipeline device augments the decode-once cache; drop --cache none or use --pipeline workers")
    train_spec, eval_spec = CacheSpec.for_training(preprocessing), CacheSpec.for_evaluation(preprocessing)
    train_source, stored = _cached(opts, dataset, "train", train_spec, force=opts.pipeline == "device")
    eval_source, _ = _cached(opts, dataset, dataset.eval_split_name, eval_spec, force=opts.pipeline == "device")
    augment = resolve_preset(opts.augment, preprocessing.input_size)
    drop_last = len(train_source) > opts.batch_size
    if use_device_pipeline(opts.pipeline, stored):
        from zoo.data.batch_augment import BatchAugment

        # array datasets (CIFAR) come uncached: bring them to the caches' squares
        train_source, eval_source = decode_once(train_source, train_spec), decode_once(eval_source, eval_spec)
        train = CachedBatches.from_images(
            train_source, BatchAugment(preprocessing, augment), opts.batch_size, device, True, generator=generator,
            sampler=sampler_for(train_source), drop_last=drop_last, channels_last=channels_last)
        plain = BatchAugment(preprocessing, augment, train=False)  # a centre crop to the input size, then scaling
        evals = CachedBatches.from_images(eval_source, plain, opts.batch_size, device, False, channels_last=channels_last)

        def plain_train():
            return CachedBatches(train.items, train.labels, plain, opts.batch_size, device, False,
                                 channels_last=channels_last)

        return Inputs(train, evals, len(train_source), len(eval_source), augment, "device", plain_train)
    workers = opts.workers if opts.workers is not None else default_workers(device)
    train_set = TransformedImages(train_source, train_transform(preprocessing, augment))
    eval_cached = isinstance(eval_source, ArrayImages) and eval_source.cache_spec == eval_spec  # already cropped
    eval_set = TransformedImages(eval_source, scale_and_normalise(preprocessing) if eval_cached
                                 else eval_transform(preprocessing))
    train = make_loader(train_set, opts.batch_size, True, workers, device, generator, sampler_for(train_set), drop_last)
    evals = make_loader(eval_set, opts.batch_size, False, workers, device)

    def plain_train():
        plain = TransformedImages(train_source, eval_transform(preprocessing))
        return LoaderBatches(make_loader(plain, opts.batch_size, False, workers, device), device, channels_last)

    return Inputs(LoaderBatches(train, device, channels_last), LoaderBatches(evals, device, channels_last),
                  len(train_set), len(eval_set), augment, "workers", plain_train)


def _gpu_decode_inputs(dataset: ImageDataset, preprocessing: Preprocessing, opts: InputOptions,
                       device: torch.device, generator: torch.Generator, sampler_for) -> Inputs:
    """No cache: workers read bytes, the GPU decodes and augments (zoo/data/gpu_decode.py)."""
    from zoo.data.batch_augment import BatchAugment
    from zoo.data.gpu_decode import GpuDecodeBatches

    augment = resolve_preset(opts.augment, preprocessing.input_size)
    workers = opts.workers if opts.workers is not None else default_workers(device)
    side, train_source, eval_source = preprocessing.resize_size, dataset.train, dataset.eval
    plain = BatchAugment(preprocessing, augment, train=False)  # the centre crop to the input size, then scaling
    common = dict(batch_size=opts.batch_size, device=device, workers=workers, channels_last=opts.channels_last,
                  mode=preprocessing.resize_mode)
    train = GpuDecodeBatches(train_source, side, BatchAugment(preprocessing, augment), shuffle=True,
                             generator=generator, sampler=sampler_for(train_source),
                             drop_last=len(train_source) > opts.batch_size, **common)
    evals = GpuDecodeBatches(eval_source, side, plain, shuffle=False, **common)

    def plain_train():
        return GpuDecodeBatches(train_source, side, plain, shuffle=False, **common)

    return Inputs(train, evals, len(train_source), len(eval_source), augment, "gpu-decode", plain_train)


def plan_storage(dataset: ImageDataset, preprocessing: Preprocessing, options: InputOptions) -> tuple[str, str]:
    """(where the train split's pixels will live: "memory", "disk", "files" or "shards"; the pipeline:
    "device", "workers" or "stream"), decided as build_inputs decides, without decoding anything."""
    from zoo.data.shards import uses_shards

    if uses_shards(dataset):
        return "shards", "stream"
    if options.pipeline == "gpu-decode" and isinstance(dataset.train, FileImages):
        return "files", "gpu-decode"
    spec = CacheSpec.for_training(preprocessing)
    stored = _storage(options, dataset.train, spec, force=options.pipeline == "device")
    return stored, "device" if use_device_pipeline(options.pipeline, stored) else "workers"


def _storage(opts: InputOptions, source, spec: CacheSpec, force: bool) -> str:
    if not isinstance(source, FileImages):
        return "disk" if isinstance(source.images, np.memmap) else "memory"
    if opts.cache == "none":
        return "files"
    if opts.cache != "disk" and not (force or opts.cache == "memory"
                                     or cache_size_bytes(source, spec.side) <= opts.cache_budget):
        return "files"
    return opts.cache if opts.cache == "disk" else "memory"


def _cached(opts: InputOptions, dataset: ImageDataset, split: str, spec: CacheSpec, force: bool):
    """(the split, decoded once as --cache says, or as it was; where its pixels live: "memory",
    "disk" (a memory-mapped cache file) or "files" (decoded every epoch))."""
    source = dataset.splits[split]
    stored = _storage(opts, source, spec, force)
    if not isinstance(source, FileImages) or stored == "files":
        if stored == "files" and opts.cache != "none":
            log.info("%s/%s stays as files: its %dx%d cache would take %s (over the %s budget; --cache-budget "
                     "to raise it, or --cache memory or disk to cache it anyway)", dataset.name, split, spec.side,
                     spec.side, format_size(cache_size_bytes(source, spec.side)), format_size(opts.cache_budget))
        return source, stored
    t0 = time.perf_counter()
    cached = decode_once_to_disk(source, spec) if stored == "disk" else decode_once(source, spec)
    log.info("decoded %s/%s once into a %dx%d uint8 cache%s (%.1f s)", dataset.name, split, spec.side, spec.side,
             " on disk" if stored == "disk" else "", time.perf_counter() - t0)
    return cached, stored
