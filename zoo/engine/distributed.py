"""torchrun support: DDP over nccl (CUDA) or gloo (CPU), a DistributedSampler, rank 0 writes."""

from __future__ import annotations

import os
import re
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

# what gloo and nccl say when the process at the other end of a collective is gone
LOST_PEER_SIGNS = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "NCCL communicator was aborted",
                   "remote process exited", "Socket Timeout", "Connection refused")


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

    def lost_peer(self, exc: BaseException, run) -> Exception | None:
        """A collective that failed because another process or node went away, as one line (None for any
        other error). gloo and nccl say it in many words; the peer's address is the useful part."""
        if not self.active or not isinstance(exc, RuntimeError):
            return None
        text = str(exc)
        if not any(sign in text for sign in LOST_PEER_SIGNS):
            return None
        from zoo.errors import TrainingError

        peer = re.search(r"\[([^\]]+)\]:(\d+)", text)
        where = f"the process at {peer.group(1)}:{peer.group(2)}" if peer else "another training process"
        return TrainingError(
            f"lost contact with {where} (rank {self.rank} of {self.world_size} stops here; "
            f"{os.uname().nodename}); {run} keeps every finished epoch: start torchrun with --max-restarts 3 "
            f"to carry on by itself when the node comes back, or run `zoo finetune --resume {run}` under torchrun")

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

    def largest(self, value: int) -> int:
        """The largest of every process's ``value``."""
        if not self.active:
            return value
        import torch.distributed as td

        box = torch.tensor([value], dtype=torch.int64, device=self.device)
        td.all_reduce(box, op=td.ReduceOp.MAX)
        return int(box.item())

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
