"""Small image operations the preprocessing pipelines share (torch only, nothing of zoo)."""

from __future__ import annotations

import torch
from torchvision.transforms import v2


class RoundToUint8(v2.Transform):
    """Float pixels back to whole 0-255 levels (what a resize of uint8 pixels ends with).

    zoo resizes in float and rounds, rather than with torchvision's uint8 kernel, because an ONNX
    graph can compute exactly that (Resize in float, then Round): the file with embedded preprocessing
    then gives the probabilities `zoo predict` gives, not ones off by a level here and there."""

    def _transform(self, inpt, params):
        if isinstance(inpt, torch.Tensor) and inpt.is_floating_point():
            return inpt.round().clamp_(0, 255).to(torch.uint8)
        return inpt

    def transform(self, inpt, params):  # torchvision >= 0.21 calls this name
        return self._transform(inpt, params)


class FitSquare(v2.Transform):
    """A whole image to a side x side square without cropping: ``squash`` resizes both sides to ``side``;
    ``letterbox`` resizes the longer side to ``side`` (the shorter truncated, torchvision's rule mirrored)
    and pads with black, centred (offset round(excess / 2), Python rounding, as the centre crop)."""

    def __init__(self, side: int, mode: str, interpolation: str = "bilinear", antialias: bool = True):
        super().__init__()
        self.side, self.mode, self.interpolation, self.antialias = side, mode, interpolation, antialias

    def _transform(self, inpt, params):
        return fit_square(inpt, self.side, self.mode, self.interpolation, self.antialias)

    def transform(self, inpt, params):  # torchvision >= 0.21 calls this name
        return self._transform(inpt, params)


def letterbox_size(height: int, width: int, side: int) -> tuple[int, int]:
    longer = max(height, width)
    return max(1, side * height // longer), max(1, side * width // longer)


def fit_square(image: torch.Tensor, side: int, mode: str, interpolation: str = "bilinear",
               antialias: bool = True) -> torch.Tensor:
    """(..., C, H, W) float pixels -> (..., C, side, side), resized in float (round afterwards)."""
    from torchvision.transforms import InterpolationMode

    height, width = image.shape[-2:]
    size = (side, side) if mode == "squash" else letterbox_size(height, width, side)
    image = v2.functional.resize(image, list(size), interpolation=InterpolationMode(interpolation), antialias=antialias)
    if mode == "letterbox":
        top, left = round((side - size[0]) / 2), round((side - size[1]) / 2)
        image = torch.nn.functional.pad(image, (left, side - size[1] - left, top, side - size[0] - top))
    return image
