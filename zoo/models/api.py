"""Public model functions: list, describe, create, and replace heads."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from zoo.errors import WeightsError, ZooError
from zoo.registry.core import get_registry
from zoo.specs import ModelInfo

log = logging.getLogger("zoo.models")

CLASSIFIER_ATTRIBUTES = ("fc", "classifier", "head", "heads")


def list_models(pattern: str | None = None, source: str | None = None) -> list[str]:
    """Model names matching an fnmatch pattern, e.g. ``list_models("resnet*", source="tv")``."""
    return get_registry().list_models(pattern, source)


def model_info(name: str) -> ModelInfo:
    return get_registry().model_info(name)


def create_model(
    name: str,
    num_classes: int | None = None,
    weights: str | Path | None = None,
    **kwargs: Any,
):
    """Build a registered model with a ``num_classes`` head, optionally loading weights.

    ``weights`` is None, "" or "none" (random init), ``"DEFAULT"`` (the published weights: cache, then
    download) or a path (.safetensors, .pt/.pth or a zoo run folder). A head of another size
    in the weights is dropped and reported; ``model.zoo_load_report`` tells what was loaded.
    """
    from zoo.models.weights import pretrained_state_dict, read_checkpoint

    info = model_info(name)
    state = None
    if weights is None or str(weights).strip().lower() in ("", "none"):  # `--weights ""` on the command line
        source = "random init"
    elif str(weights).upper() == "DEFAULT":
        state, source = pretrained_state_dict(info)
    else:
        state, meta = read_checkpoint(weights)
        source = str(weights)
        num_classes = num_classes or meta.get("num_classes")
    model = info.build(num_classes or info.default_num_classes, **kwargs)
    if state is not None:
        from zoo.models.weights import load_into

        report = load_into(model, state, source, head=info.classifier)
        log.info("%s: %s", name, report.describe())
        model.zoo_load_report = report
    return model


def find_classifier(model, hint: str | None = None) -> tuple[str, Any]:
    """(attribute name, module) of the classification head."""
    for attr in ((hint,) if hint else ()) + CLASSIFIER_ATTRIBUTES:
        module = getattr(model, attr, None)
        if module is not None and any(True for _ in module.parameters()):
            return attr, module
    raise ZooError(
        f"cannot find the classification head of {type(model).__name__}; "
        f"expected one of {', '.join(CLASSIFIER_ATTRIBUTES)}"
    )


def replace_head(model, num_classes: int, classifier: str | None = None):
    """Give a model a fresh ``num_classes`` head (timm's reset_classifier, else the last Linear)."""
    from torch import nn

    if hasattr(model, "reset_classifier"):
        model.reset_classifier(num_classes)
        return model
    attr, head = find_classifier(model, classifier)
    if isinstance(head, nn.Linear):
        setattr(model, attr, nn.Linear(head.in_features, num_classes))
        return model
    linears = [(n, m) for n, m in head.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    if not linears:
        raise WeightsError(f"head {attr!r} of {type(model).__name__} has no Linear layer to replace")
    name, last = linears[-1]
    if isinstance(last, nn.Linear):
        new = nn.Linear(last.in_features, num_classes)
    else:  # squeezenet's 1x1 conv classifier
        new = nn.Conv2d(last.in_channels, num_classes, last.kernel_size, last.stride)
    parent = head.get_submodule(name.rpartition(".")[0]) if "." in name else head
    setattr(parent, name.rpartition(".")[2], new)
    return model


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
