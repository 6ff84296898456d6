"""What a training step will need in memory, known before anything big is allocated.

The model runs once on PyTorch's meta device: shapes flow through every layer, but no memory is
taken and no arithmetic done, so an image size the model cannot take is found in milliseconds and
a 4096 px request costs nothing to look at. The outputs of the leaf modules are what backward keeps
for each image; with the parameters, their gradients and the optimizer's two moments that is the
estimate a run is checked against before its data is loaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

from zoo.errors import TrainingError

log = logging.getLogger("zoo.engine")
GB = 1e9


@dataclass(frozen=True)
class MemoryEstimate:
    per_image: int  # bytes of activations kept for backward, per image (fp32)
    fixed: int  # parameters + gradients + optimizer moments (fp32)

    def total(self, batch: int, half: bool) -> int:
        return int(self.per_image * batch * (0.5 if half else 1.0)) + self.fixed

    def largest_batch(self, available: int, half: bool) -> int:
        per_image = self.per_image * (0.5 if half else 1.0)
        return max(0, int((available - self.fixed) // max(per_image, 1)))


@torch.no_grad()
def probe(model: nn.Module, size: int, name: str, native: int | None = None) -> MemoryEstimate | None:
    """One (1, 3, size, size) image through ``model`` on the meta device; None when a layer has no meta
    kernel (then an image size other than ``native`` is checked with a real forward, as before)."""
    outputs = []

    def record(_module, _inputs, output):
        for tensor in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(tensor, torch.Tensor):
                outputs.append(tensor.numel())

    leaves = [m for m in model.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(record) for m in leaves]
    state = {k: v.to("meta") for k, v in [*model.named_parameters(), *model.named_buffers()]}
    training = model.training
    model.eval()
    try:
        torch.func.functional_call(model, state, (torch.zeros(1, 3, size, size, device="meta"),), strict=False)
    except NotImplementedError:
        if native is not None and size != native:
            _real_forward(model, size, name, native)
        return None
    except (RuntimeError, AssertionError, ValueError) as exc:
        raise _cannot_take(name, size, native, exc) from exc
    finally:
        for hook in hooks:
            hook.remove()
        model.train(training)
    parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return MemoryEstimate(per_image=4 * sum(outputs), fixed=4 * 4 * parameters)


def _real_forward(model: nn.Module, size: int, name: str, native: int) -> None:
    try:
        model(torch.zeros(1, 3, size, size))
    except (RuntimeError, AssertionError, ValueError) as exc:
        raise _cannot_take(name, size, native, exc) from exc


def _cannot_take(name: str, size: int, native: int | None, exc: BaseException) -> TrainingError:
    first_line = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
    instead = f"use --image-size {native} or another model" if native else "use another --image-size"
    return TrainingError(f"{name} cannot take {size}x{size} images ({first_line}); {instead}")


def available_bytes(device: torch.device) -> int | None:
    """Free memory where the step runs: the GPU's free memory, or the host's MemAvailable."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type == "cpu":
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
    return None


def check_fits(estimate: MemoryEstimate | None, batch: int, size: int, device: torch.device, half: bool) -> str:
    """Refuse, with the numbers and what to change, a step that cannot fit; else the estimate in words."""
    if estimate is None:
        return "not estimated (a layer has no meta kernel)"
    need = estimate.total(batch, half)
    free = available_bytes(device)
    words = f"about {need / GB:.1f} GB at batch {batch} ({estimate.per_image / 1e6:.0f} MB of activations an image)"
    if free is not None and need > free:
        fits = estimate.largest_batch(free, half)
        change = f"use --batch-size {fits}" if fits >= 1 else "no batch fits: use a smaller --image-size"
        raise TrainingError(f"training at {size} px needs {words}, more than the {free / GB:.1f} GB free on "
                            f"{device}; {change} (or a smaller --image-size)")
    return words
