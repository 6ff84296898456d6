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
