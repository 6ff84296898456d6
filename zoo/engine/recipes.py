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


# -- class imbalance ----------------------------------------------------------------------------------------------
EFFECTIVE_BETA = 0.999  # Cui et al. 2019, "Class-Balanced Loss Based on Effective Number of Samples"


def class_weights(mode: str, counts: list[int]) -> torch.Tensor | None:
    """Loss weights per class (multi-label: positive weights, from each class's positive count): none; "effective" ((1 - beta) / (1 - beta^n), which grows slower than
    1/n, so a class of 10 images among classes of 500 is not weighted 50x); "inverse" (N / (K n)); or a
    JSON file holding one positive number per class. Normalised to a mean weight of 1 per image."""
    from pathlib import Path

    from zoo.errors import TrainingError

    if mode == "none":
        return None
    n = torch.tensor(counts, dtype=torch.float64).clamp(min=1)
    if mode == "effective":
        weights = (1 - EFFECTIVE_BETA) / (1 - EFFECTIVE_BETA ** n)
    elif mode == "inverse":
        weights = n.sum() / (len(n) * n)
    else:
        import json

        try:
            values = json.loads(Path(mode).read_text())
        except (OSError, ValueError) as exc:
            raise TrainingError(f"--class-weights {mode}: not auto, none, effective, inverse or a readable JSON "
                                f"file of weights ({type(exc).__name__})") from None
        if (not isinstance(values, list) or len(values) != len(counts)
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values)):
            raise TrainingError(f"--class-weights {mode} must hold a list of {len(counts)} positive numbers, one "
                                "per class in the order of the classes")
        weights = torch.tensor(values, dtype=torch.float64)
    weights = weights * n.sum() / (weights * n).sum()  # the average image keeps weight 1
    return weights.float()


class DistributedBalancedSampler(torch.utils.data.Sampler):
    """--sampler balanced under torchrun: every process draws the same class-balanced sequence for the
    epoch (seed + epoch, so resume is exact) and keeps its own share of it (draws rank, rank + world, ...):
    together the processes see one balanced epoch, no draw twice."""

    def __init__(self, labels, world_size: int, rank: int, seed: int):
        self.weights = _balancing_weights(labels)
        self.world_size, self.rank, self.seed, self.epoch = world_size, rank, seed, 0
        self.per_process = -(-len(self.weights) // world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        draws = torch.multinomial(self.weights, self.per_process * self.world_size, replacement=True,
                                  generator=generator)
        return iter(draws[self.rank::self.world_size].tolist())

    def __len__(self) -> int:
        return self.per_process


def balanced_sampler(labels, generator: torch.Generator):
    """Each class drawn equally often (with replacement), as many draws as images: --sampler balanced."""
    weights = _balancing_weights(labels)
    return torch.utils.data.WeightedRandomSampler(weights, num_samples=len(weights), replacement=True,
                                                  generator=generator)


def _balancing_weights(labels) -> torch.Tensor:
    """Per image, 1 / its class's count: every class weighs the same in a draw. Multi-hot rows: the
    rarest of the image's classes decides (an image without labels weighs as the largest class's)."""
    import numpy as np

    labels = np.asarray(labels)
    if labels.ndim == 2:
        inverse = 1.0 / np.maximum(labels.sum(0), 1)
        weights = np.where(labels.any(1), (labels * inverse).max(1), inverse.min())
        return torch.as_tensor(weights, dtype=torch.float64)
    return torch.as_tensor(1.0 / np.bincount(labels)[labels], dtype=torch.float64)
