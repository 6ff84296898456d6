"""Training recipes beyond the plain step, each resumable: an EMA of the weights, MixUp/CutMix.

Both are timm train.py's (--model-ema, --mixup, --cutmix) made zoo-sized. The EMA is evaluated,
checkpointed and exported in place of the raw weights; its state travels in the resume folder.
MixUp and CutMix mix whole batches where they already are (on the GPU for cached batches), with
torchvision.transforms.v2's implementations, and train on soft targets.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class WeightsEma:
    """An exponential moving average of a model's parameters, buffers copied (BatchNorm statistics follow
    the model). The decay warms up as timm's does, (1 + n) / (10 + n) until it reaches ``decay``, so a
    short run's average is not dominated by its random start."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        averaged = [p for p in self.module.parameters()]
        current = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(averaged, current, 1.0 - decay)
        for mine, theirs in zip(self.module.buffers(), model.buffers()):
            mine.copy_(theirs)

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "weights": {k: v.detach().cpu() for k, v in self.module.state_dict().items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        self.module.load_state_dict(state["weights"])


def batch_mixing(mixup: float, cutmix: float, num_classes: int):
    """MixUp and/or CutMix on (images, labels) batches -> (mixed images, soft targets); None when both are 0.
    With both, each batch gets one of them (timm's switch)."""
    from torchvision.transforms import v2

    chosen = []
    if mixup > 0:
        chosen.append(v2.MixUp(alpha=mixup, num_classes=num_classes))
    if cutmix > 0:
        chosen.append(v2.CutMix(alpha=cutmix, num_classes=num_classes))
    if not chosen:
        return None
    return chosen[0] if len(chosen) == 1 else v2.RandomChoice(chosen)
