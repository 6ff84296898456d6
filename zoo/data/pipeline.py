"""Batches for the training loop, ready on the device: the one interface the engine iterates.

Two ways to get there:

* ``LoaderBatches``: a DataLoader whose workers decode (or read the cache) and run the
  per-image torchvision.transforms.v2 pipeline; the batch is then copied to the device.
* ``CachedBatches``: the decode-once uint8 cache held on the device (or in pinned memory when it
  does not fit), indexed a batch at a time and augmented there by BatchAugment. No worker,
  no per-image Python: on a GPU the input pipeline all but disappears.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader

from zoo.data.dataset import ArrayImages

log = logging.getLogger("zoo.data")

DEVICE_CACHE_SHARE = 0.25  # of free GPU memory the uint8 cache may take; beyond it stays in pinned memory


def _memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


class LoaderBatches:
    """A DataLoader's batches, moved to the device (in the memory format the model uses)."""

    def __init__(self, loader: DataLoader, device: torch.device, channels_last: bool = False):
        self.loader, self.device, self.format = loader, device, _memory_format(channels_last)

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.loader.sampler, "set_epoch"):  # DistributedSampler
            self.loader.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for images, labels in self.loader:
            yield (images.to(self.device, non_blocking=True, memory_format=self.format),
                   labels.to(self.device, non_blocking=True))


class CachedBatches:
    """Shuffled (or ordered) batches from tensors held in memory, transformed on the device.

    ``items`` is any (N, ...) tensor: the uint8 image cache (see ``from_images``) or, for
    head-only training, backbone features.
    """

    def __init__(self, items: torch.Tensor, labels, transform: Callable[[torch.Tensor], torch.Tensor] | None,
                 batch_size: int, device: torch.device, shuffle: bool, generator: torch.Generator | None = None,
                 sampler=None, drop_last: bool = False, channels_last: bool = False):
        self.items = _place(items, device)
        labels = torch.as_tensor(labels)  # class indices, or multi-hot rows (BCE wants them as floats)
        self.labels = labels.to(self.items.device, torch.float32 if labels.ndim == 2 else torch.int64)
        self.transform, self.batch_size, self.device = transform, batch_size, device
        self.shuffle, self.generator, self.sampler, self.drop_last = shuffle, generator, sampler, drop_last
        self.format = _memory_format(channels_last)

    @classmethod
    def from_images(cls, source: ArrayImages, transform, batch_size: int, device: torch.device, shuffle: bool,
                    **options) -> CachedBatches:
        images = torch.from_numpy(source.images).permute(0, 3, 1, 2)  # NHWC -> NCHW view, no copy
        return cls(images, source.labels, transform, batch_size, device, shuffle, **options)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def _count(self) -> int:
        return len(self.sampler) if self.sampler is not None else len(self.labels)

    def __len__(self) -> int:
        n = self._count()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self) -> torch.Tensor:
        if self.sampler is not None:
            return torch.as_tensor(list(self.sampler), dtype=torch.int64)
        if self.shuffle:
            return torch.randperm(len(self.labels), generator=self.generator)
        return torch.arange(len(self.labels))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self._order().to(self.items.device)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start:start + self.batch_size]
            items = self.items[index].to(self.device, non_blocking=True)
            labels = self.labels[index].to(self.device, non_blocking=True)
            if self.transform is not None:
                items = self.transform(items)
            if items.ndim == 4:
                items = items.contiguous(memory_format=self.format)
            yield items, labels


def _place(items: torch.Tensor, device: torch.device) -> torch.Tensor:
    """On the device when it fits comfortably, else in (pinned) host memory. On a CPU the items stay where
    they are: the image cache is an NHWC array seen as NCHW, whose batches come out channels-last (what
    the model takes there); a contiguous copy would double the cache's memory for nothing."""
    if device.type != "cuda":
        return items
    free, _ = torch.cuda.mem_get_info(device)
    size = items.numel() * items.element_size()
    if size <= DEVICE_CACHE_SHARE * free:
        return items.to(device).contiguous()
    log.info("the %.1f GB cache stays in pinned host memory (more than %d%% of free GPU memory)",
             size / 1e9, DEVICE_CACHE_SHARE * 100)
    return items.cpu().contiguous().pin_memory()


def use_device_pipeline(pipeline: str, stored: str) -> bool:
    """'auto' augments whole batches on the device whenever the data is in the in-memory cache
    (``stored`` is "memory", "disk" or "files": where the decoded pixels live).

    The batch path is faster than per-image v2 in workers on a CPU too (benchmarks/data_loading.py
    measures both); on a GPU it moves the work off the CPU altogether. A disk cache may exceed
    memory, so it is read per image by workers unless --pipeline device asks otherwise.
    """
    return pipeline == "device" or (pipeline == "auto" and stored == "memory")
