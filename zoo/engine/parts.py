"""The pieces the loop calls: device/precision choice, freezing, optimizer and schedule."""

from __future__ import annotations

import logging
import math
import shutil

import torch
from torch import nn

from zoo.engine.config import TrainConfig
from zoo.errors import TrainingError
from zoo.names import NameTable

log = logging.getLogger("zoo.engine")


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"--device {name} was asked for but CUDA is not available; use --device auto or cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise TrainingError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise TrainingError("--device mps was asked for but MPS is not available; use --device auto or cpu")
    return device


def precision_decision(name: str, device: torch.device) -> tuple[torch.dtype | None, str]:
    """(autocast dtype or None for fp32, why). auto: bf16 on CUDA and on CPUs that compute bf16 natively
    (AVX512-BF16 or AMX: ResNets train ~2x faster there, benchmarks/cpu_train.py), fp32 elsewhere."""
    if name != "auto":
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[name], "asked for"
    if device.type == "cuda":
        return torch.bfloat16, "auto: CUDA"
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16, "auto: this CPU computes bf16 natively"
    return None, f"auto: {device.type} without native bf16"


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}  # name -> autocast dtype


def precision_name(amp_dtype: torch.dtype | None) -> str:
    return {dtype: name for name, dtype in PRECISIONS.items()}[amp_dtype]


def cpu_has_native_bf16() -> bool:
    """Ask torch (not /proc): AVX512-BF16 or AMX tiles, as oneDNN uses them, unless oneDNN was capped
    below them (ONEDNN_MAX_CPU_ISA=AVX2, say): then bf16 would be emulated, slower than fp32."""
    import os

    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").upper()
    if cap and cap != "ALL" and not any(tag in cap for tag in ("BF16", "AMX")):
        return False
    checks = [getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None)]
    return any(check() for check in checks if check is not None)


def channels_last_default(device: torch.device) -> bool:
    """channels_last: faster for convnets on CUDA and on CPU (oneDNN's blocked layouts), measured on the
    CPU box: resnet18/50 +10-20 %, mobilenet_v3_small +35 % (benchmarks/cpu_train.py)."""
    return device.type in ("cuda", "cpu")


def autocast(device: torch.device, amp_dtype: torch.dtype | None):
    """Mixed precision in ``amp_dtype``, or nothing (fp32) when it is None."""
    return torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)


def compile_decision(wanted: bool | None, device: torch.device, total_steps: int) -> tuple[bool, str]:
    """(compile?, why): torch.compile only where its warm-up (tens of seconds) is repaid within the run.

    On a CPU it is not: measured on the CPU box (resnet50, 112 px, bf16, channels_last) it trained at
    the same images/s as eager after a 40-80 s warm-up (benchmarks/cpu_train.py --compile)."""
    if wanted is not None:
        return wanted, "on (asked for)" if wanted else "off (asked)"
    if device.type == "cpu":
        return False, "off: on a CPU it does not pay back its warm-up (--compile to try)"
    if device.type != "cuda":
        return False, f"off: not on CUDA ({device.type})"
    if total_steps < 1000:
        return False, f"off: only {total_steps} steps"
    return True, f"on: {total_steps} CUDA steps repay the warm-up"


def maybe_compile(model: nn.Module, chosen: bool, reason: str, device: torch.device) -> nn.Module:
    """torch.compile as the plan decided (compile_decision), said in one line."""
    if chosen and device.type == "cpu" and not any(shutil.which(cc) for cc in ("c++", "g++", "clang++")):
        log.warning("torch.compile needs a C++ compiler on a CPU and none is installed; training uncompiled")
        return model
    log.info("torch.compile %s", reason)
    return torch.compile(model) if chosen else model


def compiled_graphs() -> int:
    """Graphs torch.compile has made in this process (torch._dynamo's counters)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def split_head_and_body(model: nn.Module, classifier: str) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    from zoo.models.api import find_classifier

    attr, head = find_classifier(model, classifier.split(".")[0])
    head_ids = {id(p) for p in head.parameters()}
    head_params = [p for p in model.parameters() if id(p) in head_ids]
    body_params = [p for p in model.parameters() if id(p) not in head_ids]
    return head_params, body_params


def frozen_modules(model: nn.Module, freeze: str, classifier: str) -> list[nn.Module]:
    """Top-level children to freeze: all but the head ('backbone'), or the first N ('3')."""
    if freeze == "none":
        return []
    head_attr = classifier.split(".")[0]
    body = [(name, m) for name, m in model.named_children() if name != head_attr and any(True for _ in m.parameters())]
    if freeze == "backbone":
        return [m for _, m in body]
    count = int(freeze)
    if count > len(body):
        raise TrainingError(f"--freeze {count}: {type(model).__name__} has only {len(body)} stages with parameters; "
                            f"use 1-{len(body)}, backbone or none")
    return [m for _, m in body[:count]]


def set_frozen(modules: list[nn.Module], frozen: bool) -> None:
    for module in modules:
        for p in module.parameters():
            p.requires_grad_(not frozen)


def keep_frozen_in_eval(modules: list[nn.Module]) -> None:
    """Frozen parts are a fixed function while the rest trains: BatchNorm keeps its running
    statistics, dropout and stochastic depth stay off (as when features are cached)."""
    for module in modules:
        module.eval()


def _sgd(groups, cfg: TrainConfig, lr: float, fast: dict) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay,
                           **fast)


def _adam(cls):
    def build(groups, cfg: TrainConfig, lr: float, fast: dict) -> torch.optim.Optimizer:
        return cls(groups, lr=lr, weight_decay=cfg.weight_decay, **fast)

    return build


# Recipes are table entries (timm's create_optimizer_v2 / create_scheduler): one builder per name, each
# resumable through its state_dict. TrainConfig's choices list these names.
OPTIMIZER_TABLE: NameTable = NameTable("optimizer", "use sgd, adam or adamw")
for _name, _build in (("sgd", _sgd), ("adam", _adam(torch.optim.Adam)), ("adamw", _adam(torch.optim.AdamW))):
    OPTIMIZER_TABLE.add(_name, _build, "zoo")


def build_optimizer(cfg: TrainConfig, head: list[nn.Parameter], body: list[nn.Parameter], device) -> torch.optim.Optimizer:
    lr = cfg.effective_lr
    body_lr = lr * cfg.body_lr_scale if cfg.freeze != "none" else lr
    groups = [{"params": head, "lr": lr}, {"params": body, "lr": body_lr}]
    fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    return OPTIMIZER_TABLE.get(cfg.optimizer)(groups, cfg, lr, fast)


def _cosine(step: int, warmup: int, total: int, cfg: TrainConfig, steps_per_epoch: int) -> float:
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, progress))))


def _step(step: int, warmup: int, total: int, cfg: TrainConfig, steps_per_epoch: int) -> float:
    return cfg.gamma ** int(step / steps_per_epoch // cfg.step_size)


def _multistep(step: int, warmup: int, total: int, cfg: TrainConfig, steps_per_epoch: int) -> float:
    return cfg.gamma ** sum(step / steps_per_epoch >= m for m in cfg.milestones)


def _onecycle(step: int, warmup: int, total: int, cfg: TrainConfig, steps_per_epoch: int) -> float:
    peak = max(1, int(0.3 * total))  # linear up over 30 %, cosine down to ~0 (its own warmup)
    if step < peak:
        return 0.04 + 0.96 * step / peak
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - peak) / max(1, total - peak))))


def _constant(step: int, warmup: int, total: int, cfg: TrainConfig, steps_per_epoch: int) -> float:
    return 1.0


# name -> (decay factor of the step, whether a linear warmup comes first)
SCHEDULE_TABLE: NameTable = NameTable("scheduler", "use cosine, step, multistep, onecycle or none")
for _name, _decay, _warms in (("cosine", _cosine, True), ("step", _step, True), ("multistep", _multistep, True),
                              ("onecycle", _onecycle, False), ("none", _constant, True)):
    SCHEDULE_TABLE.add(_name, (_decay, _warms), "zoo")


def build_scheduler(cfg: TrainConfig, optimizer, steps_per_epoch: int, warmup: int) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-step LambdaLR (resumable by its state_dict): ``warmup`` steps of linear warmup (the plan's),
    then the chosen decay (epochs converted to steps)."""
    total = cfg.epochs * steps_per_epoch
    decay, warms = SCHEDULE_TABLE.get(cfg.scheduler)

    def factor(step: int) -> float:
        if warms and step < warmup:
            return (step + 1) / (warmup + 1)
        return decay(step, warmup, total, cfg, steps_per_epoch)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
