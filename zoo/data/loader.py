"""From an ImageSource to batches: a torch Dataset with per-image seeds, and DataLoaders."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import contextmanager

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from zoo.data.dataset import ArrayImages, ImageSource, item_label


class TransformedImages(Dataset):
    """(transformed image, label: class index or multi-hot float row) by index, or by (index, seed) from a SeededSampler."""

    def __init__(self, source: ImageSource, transform: Callable):
        self.source, self.transform = source, transform

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: int | tuple[int, int]):
        index, seed = key if isinstance(key, tuple) else (key, None)
        if isinstance(self.source, ArrayImages):  # v2 transforms take the uint8 tensor as it is: no PIL round trip
            image = torch.from_numpy(self.source.images[index]).permute(2, 0, 1)
        else:
            image = self.source.load(index)
        if seed is None:
            return self.transform(image), item_label(self.source.labels, index)
        with _seeded_cpu_rng(seed):  # the image's own random draw, whichever worker runs it
            return self.transform(image), item_label(self.source.labels, index)


@contextmanager
def _seeded_cpu_rng(seed: int):
    """Seed the CPU generator the v2 transforms draw from, and restore it afterwards (so training's
    own draws are untouched). Not torch.manual_seed: it seeds every CUDA device too, which costs
    far more than the draw itself when it happens per image."""
    generator = torch.default_generator
    state = generator.get_state()
    generator.manual_seed(seed)
    try:
        yield
    finally:
        generator.set_state(state)


class SeededSampler(Sampler):
    """Shuffled indices, each paired with a seed for that image's augmentation.

    Workers keep their random state from one epoch to the next (persistent workers) and the
    images an epoch gives each worker vary, so augmentations drawn from worker RNGs are not
    reproducible. Seeds drawn here, in the main process from ``generator`` (which the trainer
    seeds per epoch), make an epoch the same with any number of workers and after resume.
    ``order`` (a DistributedSampler under torchrun) gives the indices; by default a permutation.
    """

    def __init__(self, size: int, generator: torch.Generator, order: Sampler | None = None):
        self.size, self.generator, self.order = size, generator, order

    def __len__(self) -> int:
        return len(self.order) if self.order is not None else self.size

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.order, "set_epoch"):  # DistributedSampler
            self.order.set_epoch(epoch)

    def __iter__(self):
        if self.order is not None:
            indices = list(self.order)
        else:
            indices = torch.randperm(self.size, generator=self.generator).tolist()
        base = int(torch.randint(0, 2**62, (), generator=self.generator))
        for index in indices:
            yield index, base + index


def default_workers(device: torch.device) -> int:
    cores = os.cpu_count() or 1
    return min(8, cores) if device.type == "cuda" else max(0, min(2, cores - 1))


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    workers: int,
    device: torch.device,
    generator: torch.Generator | None = None,
    sampler=None,
    drop_last: bool = False,
) -> DataLoader:
    """A DataLoader tuned for training; with ``shuffle`` the order and augmentations follow ``generator``."""
    if shuffle:
        sampler = SeededSampler(len(dataset), generator or torch.Generator(), order=sampler)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        generator=torch.Generator(),  # worker base seeds: unused (images carry seeds), and no global RNG draw
        drop_last=drop_last,
    )
