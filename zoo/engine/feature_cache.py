"""Head-only training on backbone features computed once.

With the backbone frozen and no augmentation, every epoch would push the same images through
the same frozen layers. Instead the features (the head's input) are computed once and the
head alone trains on them: epochs take milliseconds instead of a full forward pass.
The shortcut checks itself: the head applied to cached features must reproduce the whole
model's logits, else training goes the ordinary way.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

import torch
from torch import nn

from zoo.data.decoded_cache import cache_budget, format_size
from zoo.data.inputs import Inputs
from zoo.data.pipeline import CachedBatches
from zoo.engine.config import TrainConfig
from zoo.engine.parts import autocast

log = logging.getLogger("zoo.engine")


def wanted(cfg: TrainConfig, augment: str, distributed: bool) -> bool:
    return (cfg.feature_cache == "auto" and cfg.freeze == "backbone" and cfg.unfreeze_at is None
            and augment == "none" and not distributed)


def head_only_inputs(model: nn.Module, head_attr: str, inputs: Inputs, cfg: TrainConfig, device: torch.device,
                     amp_dtype: torch.dtype | None, generator: torch.Generator) -> tuple[nn.Module, Inputs] | None:
    """(the head, batches of features) or None when the model does not fit the shortcut.

    One evaluation batch decides first (does the head reproduce the model? do all features fit
    the budget?), so nothing is computed for a model that cannot take the shortcut.
    """
    head = getattr(model, head_attr)
    model.eval()
    images, _ = next(iter(inputs.eval))
    with torch.no_grad(), autocast(device, amp_dtype):
        whole = model(images).float()
        with _head_removed(model, head_attr):
            probe = model(images)
        split = head(probe).float()
    if not torch.allclose(whole, split, rtol=1e-3, atol=1e-3 * (1 + whole.abs().max().item())):
        log.info("feature cache off: %s is not head(features), training the ordinary way", type(model).__name__)
        return None
    size = probe[0].numel() * 4 * (inputs.train_images + inputs.eval_images)  # kept as float32
    budget = cache_budget(cfg.cache_budget)
    if size > budget:
        log.info("feature cache off: %s of features is over the %s cache budget (--cache-budget)", format_size(size),
                 format_size(budget))
        return None
    with _head_removed(model, head_attr):
        train_x, train_y = _features(model, inputs.plain_train(), device, amp_dtype)
        eval_x, eval_y = _features(model, inputs.eval, device, amp_dtype)
    log.info("feature cache: backbone features computed once (%s per image); only %s trains",
             "x".join(map(str, train_x.shape[1:])), head_attr)
    features = Inputs(
        CachedBatches(train_x, train_y, None, cfg.batch_size, device, True, generator=generator,
                      drop_last=len(train_y) > cfg.batch_size),
        CachedBatches(eval_x, eval_y, None, cfg.batch_size, device, False),
        inputs.train_images, inputs.eval_images, inputs.augment, inputs.pipeline + " + feature cache",
        inputs.plain_train,
    )
    return head, features


@contextmanager
def _head_removed(model: nn.Module, head_attr: str):
    """The model without its head: it returns the head's input."""
    head = getattr(model, head_attr)
    setattr(model, head_attr, nn.Identity())
    try:
        yield
    finally:
        setattr(model, head_attr, head)


@torch.no_grad()
def _features(body: nn.Module, batches, device, amp_dtype) -> tuple[torch.Tensor, torch.Tensor]:
    feats, labels = [], []
    for images, y in batches:
        with autocast(device, amp_dtype):
            feats.append(body(images).float())
        labels.append(y)
    return torch.cat(feats), torch.cat(labels)
