"""Augmentation of whole uint8 batches on the training device (the decode-once cache's fast path).

The per-image torchvision.transforms.v2 pipeline in DataLoader workers is the reference; this
module reproduces each preset for a batch at once, with its own random draw per image:
one affine sampling grid per image does the crop, scale, rotation and flips, then colour
jitter and grayscale are per-image blends. Random parameters come from torch's CPU generator,
so a run is reproducible whatever the device, and resume is exact.

Known differences from the per-image path (all within what the augmentation is meant to do):
bilinear sampling without antialiasing (crops are at most ~1.15x larger than the output), the
cifar preset pads by repeating the edge row rather than reflecting, and colour jitter applies
brightness, contrast, saturation in that fixed order.
"""

from __future__ import annotations

import math
import torch
from torch.nn import functional as F

from zoo.data.transforms import PRESET_TABLE, resolve_preset
from zoo.specs import Preprocessing

_GRAY = (0.299, 0.587, 0.114)  # the ITU-R 601 weights torchvision uses for rgb_to_grayscale


class BatchAugment:
    """uint8 (N, 3, S, S) cached images -> normalised float (N, 3, size, size), on their device."""

    def __init__(self, preprocessing: Preprocessing, preset: str, train: bool = True):
        self.size = preprocessing.input_size
        self.preset = resolve_preset(preset, self.size) if train else "none"
        self.recipe = PRESET_TABLE[self.preset]
        self.policy = self.recipe.policy_transform()
        self.mean = torch.tensor(preprocessing.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(preprocessing.std).view(1, 3, 1, 1)
        self._normalisation: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}  # mean/std per device

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise TypeError(f"BatchAugment takes a uint8 (N, 3, H, W) batch, got {images.dtype} {tuple(images.shape)}")
        recipe = self.recipe
        if recipe.name == "none":
            x = _center_crop(images, self.size).float().div_(255)
        else:
            if self.policy is not None:  # per image, on the uint8 pixels (as the per-image path does)
                images = torch.stack([self.policy(image) for image in images])
            x = self._geometric(images.float().div_(255))
            if recipe.jitter:
                x = _color_jitter(x, recipe.jitter, recipe.jitter, recipe.jitter)
            if recipe.grayscale:
                x = _random_grayscale(x, p=recipe.grayscale)
        if images.device not in self._normalisation:  # copied once, not once per batch
            self._normalisation[images.device] = self.mean.to(images.device), self.std.to(images.device)
        mean, std = self._normalisation[images.device]
        return x.sub_(mean).div_(std)

    def _geometric(self, x: torch.Tensor) -> torch.Tensor:
        """One affine grid per image: output pixel -> where to sample in the cached image."""
        n, side, recipe = x.shape[0], x.shape[-1], self.recipe
        flip_x = torch.where(torch.rand(n) < 0.5, -1.0, 1.0) if recipe.hflip else torch.ones(n)
        flip_y = torch.ones(n)
        angle = torch.zeros(n)
        if recipe.crop_scale:  # RandomResizedCrop(scale, ratio=(3/4, 4/3)) + horizontal flip
            area = torch.empty(n).uniform_(*recipe.crop_scale)
            ratio = torch.exp(torch.empty(n).uniform_(math.log(3 / 4), math.log(4 / 3)))
            width, height = (area * ratio).sqrt().clamp(max=1.0), (area / ratio).sqrt().clamp(max=1.0)
            center_x = (torch.rand(n) * 2 - 1) * (1 - width)
            center_y = (torch.rand(n) * 2 - 1) * (1 - height)
            padding = "zeros"
        elif recipe.pad_crop:  # pad size/8, random crop (whole-pixel shifts), horizontal flip
            pad = self.size // 8
            shift = torch.randint(-pad, pad + 1, (2, n)).float() * 2 / side
            width = height = torch.full((n,), self.size / side)
            center_x, center_y = shift[0], shift[1]
            padding = "border"
        else:  # rotation about the centre, centre crop, flips
            angle = torch.empty(n).uniform_(-recipe.rotate, recipe.rotate) * math.pi / 180
            flip_y = torch.where(torch.rand(n) < 0.5, -1.0, 1.0) if recipe.vflip else torch.ones(n)
            width = height = torch.full((n,), self.size / side)
            center_x = center_y = torch.zeros(n)
            padding = "zeros"
        cos, sin = angle.cos(), angle.sin()
        theta = torch.stack([
            torch.stack([cos * width * flip_x, -sin * height * flip_y, center_x], dim=1),
            torch.stack([sin * width * flip_x, cos * height * flip_y, center_y], dim=1),
        ], dim=1)
        grid = F.affine_grid(_to_device(theta, x.device), [n, 3, self.size, self.size], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def _center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    top, left = (images.shape[-2] - size) // 2, (images.shape[-1] - size) // 2
    return images[..., top:top + size, left:left + size]


def _to_device(values: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Parameters drawn on the CPU to the batch's device; on CUDA through pinned memory, so the
    copy is asynchronous and the training step never waits on the host."""
    if device.type != "cuda":
        return values.to(device)
    return values.pin_memory().to(device, non_blocking=True)


def _per_image(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return _to_device(values, like.device).view(-1, 1, 1, 1)


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    return (_GRAY[0] * r + _GRAY[1] * g + _GRAY[2] * b).unsqueeze(1)


def _color_jitter(x: torch.Tensor, brightness: float, contrast: float, saturation: float) -> torch.Tensor:
    n = x.shape[0]

    def factor(amount: float) -> torch.Tensor:
        return _per_image(torch.empty(n).uniform_(1 - amount, 1 + amount), x)

    x = (x * factor(brightness)).clamp_(0, 1)
    mean = _grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    x = torch.lerp(mean, x, factor(contrast)).clamp_(0, 1)
    return torch.lerp(_grayscale(x), x, factor(saturation)).clamp_(0, 1)


def _random_grayscale(x: torch.Tensor, p: float) -> torch.Tensor:
    chosen = _per_image(torch.rand(x.shape[0]) < p, x)
    return torch.where(chosen, _grayscale(x).expand_as(x), x)
