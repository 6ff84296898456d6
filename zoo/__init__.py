"""zoo: a plugin-based model zoo for image classification.

    import zoo
    model = zoo.create_model("resnet18", num_classes=10)
    zoo.finetune(model="resnet18_cifar", data="cifar10", epochs=5)    # names resolved for you
    zoo.fit(my_module, my_dataset, zoo.TrainConfig(epochs=5))         # or your own objects
    zoo.export(format="onnx")

Importing zoo is cheap: torch, plugins and model code load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it; resolved on first attribute access (PEP 562)
_LAZY = {
    "list_models": "zoo.models.api",
    "model_info": "zoo.models.api",
    "create_model": "zoo.models.api",
    "replace_head": "zoo.models.api",
    "list_datasets": "zoo.data.api",
    "dataset_info": "zoo.data.api",
    "create_dataset": "zoo.data.api",
    "list_plugins": "zoo.registry.core",
    "finetune": "zoo.engine.api",
    "fit": "zoo.engine.loop",
    "plan": "zoo.engine.api",
    "RunPlan": "zoo.engine.plan",
    "Callback": "zoo.engine.callbacks",
    "EpochResult": "zoo.engine.callbacks",
    "StopTraining": "zoo.engine.callbacks",
    "TrainConfig": "zoo.engine.config",
    "ImageDataset": "zoo.data.dataset",
    "Preprocessing": "zoo.specs",
    "find_run": "zoo.runs",
    "export": "zoo.exporter.api",
    "predict": "zoo.inference",
    "evaluate": "zoo.evaluation",
    "get_registry": "zoo.registry.core",
    "cache_usage": "zoo.cache",
    "clear_cache": "zoo.cache",
    "ZooError": "zoo.errors",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
