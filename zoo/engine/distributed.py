"""torchrun support: DDP over nccl (CUDA) or gloo (CPU), a DistributedSampler, rank 0 writes."""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class DistributedContext:
    world_size: int = 1
    rank: int = 0
    device: torch.device | None = None

    @classmethod
    def from_env(cls) -> DistributedContext:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        import torch.distributed as td

        local = int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = torch.cuda.is_available()
        if not td.is_initialized():
            td.init_process_group("nccl" if use_cuda else "gloo")
        device = torch.device("cuda", local) if use_cuda else torch.device("cpu")
        if use_cuda:
            torch.cuda.set_device(device)
        return cls(world, td.get_rank(), device)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def sampler(self, dataset, seed: int):
        if not self.active:
            return None
        from torch.utils.data.distributed import DistributedSampler

        return DistributedSampler(dataset, num_replicas=self.world_size, rank=self.rank, shuffle=True, seed=seed)

    def wrap(self, model: nn.Module) -> nn.Module:
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device is not None and self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def total(self, images: float, seconds: float) -> tuple[float, float]:
        """(images of all processes together, the slowest process's seconds): the run's global rate."""
        if not self.active:
            return images, seconds
        import torch.distributed as td

        values = torch.tensor([images, seconds], dtype=torch.float64, device=self.device)
        summed, slowest = values.clone(), values.clone()
        td.all_reduce(summed, op=td.ReduceOp.SUM)
        td.all_reduce(slowest, op=td.ReduceOp.MAX)
        return summed[0].item(), slowest[1].item()

    def from_main(self, value):
        """Rank 0's ``value`` on every process (a decision only rank 0's callbacks made)."""
        if not self.active:
            return value
        import torch.distributed as td

        box = [value]
        td.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda" else None)
        return box[0]

    @staticmethod
    def no_sync(model: nn.Module):
        """On a micro-step that does not step the optimizer, skip DDP's gradient all-reduce
        (it happens once, on the last micro-step, as in nanoGPT)."""
        return model.no_sync() if hasattr(model, "no_sync") else nullcontext()

    def close(self) -> None:
        if self.active:
            import torch.distributed as td

            td.barrier()
            td.destroy_process_group()
