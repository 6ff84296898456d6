"""How long a run will take, estimated on this machine before it starts (`--dry-run` and the start line).

A few training steps (forward, backward and an optimizer step, on a copy of the model: the model
itself is not changed) on random images of the run's size, on the run's device and precision, after
one warm-up step, at two small probe batches; a straight line through them (a fixed cost per step
plus a cost per image) gives the step at the run's batch. The epoch is that times the steps, plus
the evaluation pass (forward only, about a third of a training step an image) and the checkpoint
files written after it. Data loading and torch.compile's warm-up are not in it: the estimate says so.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
from torch import nn

from zoo.engine.parts import PRECISIONS, autocast

TIMED_STEPS = 2  # at each probe batch
PROBE_BATCHES = (2, 8)
WRITE_BYTES_PER_S = 200e6  # checkpoint files written and flushed to disk, a modest disk's pace


@dataclass(frozen=True)
class TimeEstimate:
    step_s: float
    epoch_s: float
    total_s: float
    how: str

    def describe(self) -> str:
        from zoo.progress import clock

        return f"about {clock(self.epoch_s)} an epoch, {clock(self.total_s)} in all ({self.how})"


def estimate(model: nn.Module, plan, eval_images: int) -> TimeEstimate:
    device = torch.device(plan.device)
    amp = PRECISIONS[plan.precision]
    batch = plan.config["batch_size"]
    small, large = (min(batch, b) for b in PROBE_BATCHES)
    work = copy.deepcopy(model).to(device, memory_format=torch.channels_last if plan.channels_last
                                   else torch.contiguous_format).train()
    optimizer = torch.optim.AdamW(work.parameters(), lr=1e-9)  # the copy's: the step's cost, nothing learnt

    def seconds_per_step(size: int, steps: int) -> float:
        images = torch.randn(size, 3, plan.image_size, plan.image_size, device=device)
        if plan.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        labels = torch.zeros(size, dtype=torch.long, device=device)
        started = time.perf_counter()
        for _ in range(steps):
            with autocast(device, amp):
                loss = nn.functional.cross_entropy(work(images).float(), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        return (time.perf_counter() - started) / steps

    seconds_per_step(large, 1)  # warm-up: first-call allocations and kernel choices
    t_small, t_large = seconds_per_step(small, TIMED_STEPS), seconds_per_step(large, TIMED_STEPS)
    per_image = max(0.0, (t_large - t_small) / (large - small)) if large > small else t_large / large
    fixed = max(0.0, t_large - per_image * large)
    per_step = (fixed + per_image * batch) * plan.config["accumulate_steps"]
    evaluation = per_step / 3 * eval_images / max(1, batch * plan.config["accumulate_steps"])
    parameters = sum(p.numel() * p.element_size() for p in model.parameters())
    checkpoint = parameters * 6 / WRITE_BYTES_PER_S  # best + last + resume weights, optimizer moments, fsync'd
    epoch = per_step * plan.steps_per_epoch + evaluation + checkpoint
    how = (f"timed on {TIMED_STEPS} steps each of {small} and {large} random images on {device}, {plan.precision}, "
           f"extended to batch {batch}; data loading not included")
    return TimeEstimate(per_step, epoch, epoch * plan.epochs, how)
