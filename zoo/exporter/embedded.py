"""The evaluation preprocessing as part of the model, for an ONNX file that takes decoded images.

``WithPreprocessing(model, pre)`` takes uint8 RGB images (N, H, W, 3) of any H and W (every image of
a batch the same size) and does what zoo.data.transforms' evaluation pipeline does: resize so the
shorter side is ``resize_size`` (the longer side truncated, torchvision's rule), bilinear with
antialias, rounded back to whole levels as torchvision does for uint8 images, centre crop (rounding
half to even, as Python's round), scale to 0-1, normalise, then the network.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.specs import Preprocessing


class WithPreprocessing(nn.Module):
    def __init__(self, model: nn.Module, pre: Preprocessing):
        super().__init__()
        self.model, self.resize, self.size, self.mode = model, pre.resize_size, pre.input_size, pre.interpolation
        self.antialias = pre.antialias
        self.register_buffer("mean", torch.tensor(pre.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(pre.std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).float()
        height, width = x.shape[-2], x.shape[-1]
        short = torch.sym_min(height, width)
        new_h, new_w = self.resize * height // short, self.resize * width // short  # the short side: exactly resize
        x = nn.functional.interpolate(x, size=(new_h, new_w), mode=self.mode, antialias=self.antialias,
                                      align_corners=False)
        x = x.round().clamp(0, 255)  # torchvision resizes uint8 images to whole levels
        top, left = _half_to_even(new_h - self.size), _half_to_even(new_w - self.size)
        x = x[:, :, top:top + self.size, left:left + self.size]
        return self.model((x / 255 - self.mean) / self.std)


def _half_to_even(excess):
    """round(excess / 2) as Python rounds (half to even), in integer arithmetic an exporter can trace."""
    return excess // 2 + (excess % 4) // 3
