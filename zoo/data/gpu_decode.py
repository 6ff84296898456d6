"""``--pipeline gpu-decode``: for data too large for the decode-once cache, JPEGs decoded on the GPU.

DataLoader workers only read each file's bytes (and its header); the training process decodes a
whole batch of JPEGs at once on the GPU (nvJPEG, through torchvision.io.decode_jpeg(device="cuda")),
brings each to the training square (shorter side resized, antialiased; centre crop) there, and
BatchAugment augments the batch there too. The CPU's work per image is a file read.

A file the GPU decoder should not get is decoded by the worker with zoo's own reader (the same rules
as everywhere: EXIF orientation, 16-bit, alpha, palette): not a JPEG, a CMYK JPEG, or a JPEG with an
EXIF orientation. Without CUDA the same pipeline decodes JPEGs on the CPU (torchvision.io), said once.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from zoo.data.dataset import FileImages, item_label
from zoo.imageops import fit_square

log = logging.getLogger("zoo.data")
EXIF_ORIENTATION = 0x0112


class EncodedImages(Dataset):
    """(JPEG bytes as a uint8 tensor, or the image decoded here as a uint8 (3, H, W) tensor; label)."""

    def __init__(self, source: FileImages):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        path, label = self.source.paths[index], item_label(self.source.labels, index)
        with open(path, "rb") as f:
            data = f.read()
        if gpu_decodable(data):
            return ("jpeg", torch.frombuffer(bytearray(data), dtype=torch.uint8)), label
        from zoo.data.decode import decode_rgb

        pixels = torch.from_numpy(np.array(decode_rgb(path))).permute(2, 0, 1).contiguous()
        return ("pixels", pixels), label


def gpu_decodable(data: bytes) -> bool:
    """A baseline RGB or gray JPEG without an EXIF rotation (header read only)."""
    if not data.startswith(b"\xff\xd8"):
        return False
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.mode in ("RGB", "L") and image.getexif().get(EXIF_ORIENTATION, 1) == 1
    except Exception:  # noqa: BLE001 - anything odd goes to zoo's reader, which names the problem
        return False


def _collate(items):
    labels = [label for _, label in items]
    if isinstance(labels[0], torch.Tensor):  # multi-hot rows
        return [item for item, _ in items], torch.stack(labels)
    return [item for item, _ in items], torch.tensor(labels, dtype=torch.int64)


class GpuDecodeBatches:
    """Batches of uint8 squares made on ``device`` from encoded files, then ``transform`` (BatchAugment)."""

    def __init__(self, source: FileImages, side: int, transform, batch_size: int, device: torch.device,
                 shuffle: bool, workers: int, generator: torch.Generator | None = None, sampler=None,
                 drop_last: bool = False, channels_last: bool = False, mode: str = "crop"):
        if shuffle and sampler is None:
            sampler = torch.utils.data.RandomSampler(source, generator=generator)
        self.loader = DataLoader(EncodedImages(source), batch_size=batch_size, sampler=sampler, num_workers=workers,
                                 collate_fn=_collate, drop_last=drop_last, persistent_workers=workers > 0,
                                 prefetch_factor=4 if workers > 0 else None)
        self.side, self.transform, self.device, self.mode = side, transform, device, mode
        self.format = torch.channels_last if channels_last else torch.contiguous_format
        if device.type != "cuda":
            log.info("--pipeline gpu-decode without CUDA: JPEGs are decoded on the CPU (torchvision.io)")

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.loader.sampler, "set_epoch"):
            self.loader.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for items, labels in self.loader:
            squares = torch.stack([to_square(image, self.side, self.mode) for image in decode(items, self.device)])
            images = self.transform(squares) if self.transform is not None else squares
            yield images.contiguous(memory_format=self.format), labels.to(self.device, non_blocking=True)


# nvJPEG's hardware decoder writes its outputs without waiting for work queued on the stream that
# allocated them (pytorch/vision#9606, meta-pytorch/torchcodec#1634). On the training stream the caching
# allocator hands it blocks the previous step freed while its kernels still read them, and training
# goes NaN (resnet50 on food20, H200, epoch 1). "side": decode on a stream of its own, whose memory pool
# only ever held decoded images, each released to the training stream through record_stream (the
# allocator reuses it only after the training work queued on it is done), so decoding still overlaps
# the previous step. "drain": wait for the training stream first (the fix those threads describe,
# which gives up that overlap). benchmarks/gpu_decode_diagnose.py measures both.
DECODE_ORDERING = "side"
_side_streams: dict[torch.device, torch.cuda.Stream] = {}


def decode(items, device: torch.device) -> list[torch.Tensor]:
    """(3, H, W) uint8 tensors on ``device``: the JPEGs decoded together (one batched nvJPEG call on CUDA)."""
    jpegs = [data for kind, data in items if kind == "jpeg"]
    decoded = iter(_decode_jpegs(jpegs, device) if jpegs else [])
    return [next(decoded).to(device) if kind == "jpeg" else data.to(device, non_blocking=True) for kind, data in items]


def _decode_jpegs(jpegs: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    from torchvision.io import ImageReadMode, decode_jpeg

    if device.type != "cuda":
        return decode_jpeg(jpegs, mode=ImageReadMode.RGB, device=device)
    training = torch.cuda.current_stream(device)
    if DECODE_ORDERING == "drain":
        training.synchronize()
        return decode_jpeg(jpegs, mode=ImageReadMode.RGB, device=device)
    if device not in _side_streams:
        _side_streams[device] = torch.cuda.Stream(device)
    side = _side_streams[device]
    with torch.cuda.stream(side):
        images = decode_jpeg(jpegs, mode=ImageReadMode.RGB, device=device)
    training.wait_stream(side)
    for image in images:
        image.record_stream(training)
    return images


def to_square(image: torch.Tensor, side: int, mode: str = "crop") -> torch.Tensor:
    """Shorter side to ``side`` (bilinear, antialiased, rounded to whole levels), then the centre square;
    or the whole image squashed / letterboxed to the square (zoo.imageops.fit_square)."""
    if mode != "crop":
        return fit_square(image[None].float(), side, mode)[0].round_().clamp_(0, 255).to(torch.uint8)
    height, width = image.shape[-2:]
    short = min(height, width)
    size = (int(side * height / short), int(side * width / short))  # torchvision's rule: the longer side truncated
    if size != (height, width):
        image = torch.nn.functional.interpolate(image[None].float(), size=size, mode="bilinear", antialias=True,
                                                align_corners=False)[0].round_().clamp_(0, 255).to(torch.uint8)
    top, left = round((size[0] - side) / 2), round((size[1] - side) / 2)  # as torchvision's CenterCrop
    return image[:, top:top + side, left:left + side]
