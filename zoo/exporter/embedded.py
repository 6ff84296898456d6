"""The evaluation preprocessing as part of the model, for an ONNX file that takes decoded images.

``WithPreprocessing(model, pre)`` takes uint8 RGB images (N, H, W, 3) of any H and W (every image of
a batch the same size) and does what zoo.data.transforms' evaluation pipeline does: resize so the
shorter side is ``resize_size`` (the longer side truncated, torchvision's rule), bilinear with
antialias, centre crop (rounding half to even, as Python's round), rounded back to whole levels as
torchvision does for uint8 images, scale to 0-1, normalise, then the network. The antialiased resize
is written as two matrix products of triangle-filter weights (``resize_weights``), not as ONNX's
Resize with antialias=1, which OpenVINO and OpenCV DNN read but silently compute without antialiasing.
The squash and letterbox resize modes are the same products, the letterbox's black bars as rows and
columns of zero weights (zoo.imageops.fit_square is the reference).
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.specs import Preprocessing


class WithPreprocessing(nn.Module):
    def __init__(self, model: nn.Module, pre: Preprocessing):
        super().__init__()
        self.model, self.resize, self.size, self.mode = model, pre.resize_size, pre.input_size, pre.interpolation
        self.antialias, self.fit = pre.antialias, pre.resize_mode
        self.register_buffer("mean", torch.tensor(pre.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(pre.std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).float()
        height, width = x.shape[-2], x.shape[-1]
        if self.fit != "crop":
            x = self._fit_square(x, height, width)
            return self.model((x.round().clamp(0, 255) / 255 - self.mean) / self.std)
        short = torch.sym_min(height, width)
        new_h, new_w = self.resize * height // short, self.resize * width // short  # the short side: exactly resize
        top, left = _half_to_even(new_h - self.size), _half_to_even(new_w - self.size)
        if self.mode == "bilinear" and self.antialias:
            # the resize as two matrix products, only for the rows and columns the centre crop keeps: MatMul and
            # arithmetic every runtime computes alike (OpenVINO and OpenCV ignore Resize's antialias attribute)
            rows = resize_weights(height, new_h, top, self.size)
            cols = resize_weights(width, new_w, left, self.size)
            x = rows @ x @ cols.transpose(0, 1)
        else:
            x = nn.functional.interpolate(x, size=(new_h, new_w), mode=self.mode, antialias=self.antialias,
                                          align_corners=False)
            x = x[:, :, top:top + self.size, left:left + self.size]
        x = x.round().clamp(0, 255)  # torchvision resizes uint8 images to whole levels
        return self.model((x / 255 - self.mean) / self.std)

    def _fit_square(self, x: torch.Tensor, height, width) -> torch.Tensor:
        side = self.size
        if self.fit == "squash":
            new_h, new_w = side, side
        else:  # letterbox: the longer side to side, the shorter truncated
            longer = torch.sym_max(height, width)
            new_h, new_w = side * height // longer, side * width // longer
        top, left = _half_to_even(side - new_h), _half_to_even(side - new_w)
        if self.mode == "bilinear" and self.antialias:
            rows = nn.functional.pad(resize_weights(height, new_h, 0, new_h), (0, 0, top, side - new_h - top))
            cols = nn.functional.pad(resize_weights(width, new_w, 0, new_w), (0, 0, left, side - new_w - left))
            return rows @ x @ cols.transpose(0, 1)  # zero rows and columns: the black bars
        x = nn.functional.interpolate(x, size=(new_h, new_w), mode=self.mode, antialias=self.antialias,
                                      align_corners=False)
        return nn.functional.pad(x, (left, side - new_w - left, top, side - new_h - top))


def resize_weights(in_size, out_size, first: int, count: int) -> torch.Tensor:
    """(count, in_size) weights of output pixels first..first+count-1 of an antialiased bilinear resize from
    in_size to out_size: PIL's and torchvision's triangle filter (support 1 pixel of the larger of the two
    grids), normalised per output pixel."""
    scale = in_size / out_size
    support = torch.clamp(torch.tensor(scale, dtype=torch.float32), min=1.0)
    centres = (torch.arange(count, dtype=torch.float32) + first + 0.5) * scale
    sources = torch.arange(in_size, dtype=torch.float32) + 0.5
    weights = torch.relu(1.0 - torch.abs(sources[None, :] - centres[:, None]) / support)
    return weights / weights.sum(dim=1, keepdim=True)


def _half_to_even(excess):
    """round(excess / 2) as Python rounds (half to even), in integer arithmetic an exporter can trace."""
    return excess // 2 + (excess % 4) // 3
