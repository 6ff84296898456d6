"""The ``tv:`` and ``timm:`` namespaces: every torchvision and timm classifier, on demand.

Names come from each library's own listing and metadata from its weights/pretrained config,
so listing never builds a model.
"""

from __future__ import annotations

import functools
from typing import Any

from zoo.errors import UnknownNameError, did_you_mean
from zoo.specs import IMAGENET_MEAN, IMAGENET_STD, ModelInfo, WeightsFile

# Where each torchvision family keeps its classification head.
_TV_CLASSIFIER_BY_PREFIX = {
    "alexnet": "classifier", "vgg": "classifier", "squeezenet": "classifier", "densenet": "classifier",
    "mobilenet": "classifier", "mnasnet": "classifier", "efficientnet": "classifier",
    "convnext": "classifier", "maxvit": "classifier", "vit": "heads", "swin": "head",
}


def tv_classifier_attribute(name: str) -> str:
    for prefix, attr in _TV_CLASSIFIER_BY_PREFIX.items():
        if name.startswith(prefix):
            return attr
    return "fc"  # resnet, resnext, wide_resnet, regnet, googlenet, inception, shufflenet


class TorchvisionNamespace:
    """``tv:<name>``: every classifier torchvision.models lists."""

    prefix = "tv"

    @functools.cached_property
    def _names(self) -> list[str]:
        from zoo.models.listing_cache import remembered

        def listing() -> list[str]:
            import torchvision.models

            return torchvision.models.list_models(module=torchvision.models)

        return remembered("names", "tv", listing)  # per torchvision version: listing imports nothing warm

    def names(self) -> list[str]:
        return list(self._names)

    def info(self, name: str) -> ModelInfo:
        if name not in self._names:
            raise UnknownNameError(
                f"unknown torchvision model 'tv:{name}'{_suggest('tv', name, self._names)}; "
                "`zoo list --source tv` shows them"
            )
        import torchvision.models

        weights = torchvision.models.get_model_weights(name).DEFAULT
        preset: dict[str, Any] = dict(getattr(weights.transforms, "keywords", {}))
        crop = int(preset.get("crop_size", 224))
        from torchvision.transforms import InterpolationMode

        interp = preset.get("interpolation", InterpolationMode.BILINEAR)
        return ModelInfo(
            name=f"tv:{name}",
            factory=_build_torchvision,
            factory_kwargs={"arch": name},
            source="tv",
            family=name.rstrip("0123456789_").split("_")[0],
            description=f"torchvision {name} ({weights.meta.get('num_params', 0) / 1e6:.1f}M params)",
            input_size=crop,
            resize_size=int(preset.get("resize_size", round(crop / 0.875))),
            mean=tuple(preset.get("mean", IMAGENET_MEAN)),
            std=tuple(preset.get("std", IMAGENET_STD)),
            interpolation=getattr(interp, "value", str(interp)),
            classifier=tv_classifier_attribute(name),
            weights=WeightsFile(weights.url, _hash_from_filename(weights.url)),
            distribution="torchvision",
        )


def _build_torchvision(arch: str, num_classes: int, **kwargs: Any) -> Any:
    import torchvision.models

    if arch in ("googlenet", "inception_v3"):
        kwargs.setdefault("aux_logits", False)  # one output tensor for training and export
        kwargs.setdefault("init_weights", True)
    return torchvision.models.get_model(arch, weights=None, num_classes=num_classes, **kwargs)


def _hash_from_filename(url: str) -> str:
    """torchvision names files '<arch>-<first hex of sha256>.pth'."""
    stem = url.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    suffix = stem.rsplit("-", 1)[-1]
    return suffix if all(c in "0123456789abcdef" for c in suffix) and len(suffix) >= 6 else ""


class TimmNamespace:
    """``timm:<name>``: every model timm lists (a ``.tag`` picks its pretrained variant)."""

    prefix = "timm"

    @functools.cached_property
    def _names(self) -> list[str]:
        from zoo.models.listing_cache import remembered

        def listing() -> list[str]:
            import timm

            return timm.list_models()

        return remembered("names", "timm", listing)  # per timm version

    def names(self) -> list[str]:
        return list(self._names)

    def info(self, name: str) -> ModelInfo:
        import timm

        arch = name.split(".", 1)[0]
        if arch not in self._names:
            raise UnknownNameError(
                f"unknown timm model 'timm:{name}'{_suggest('timm', arch, self._names)}; "
                "`zoo list --source timm` shows them"
            )
        cfg = timm.models.get_pretrained_cfg(name)
        size = int(cfg.input_size[-1]) if cfg else 224
        crop_pct = cfg.crop_pct if cfg and cfg.crop_pct else 0.875
        return ModelInfo(
            name=f"timm:{name}",
            factory=_build_timm,
            factory_kwargs={"arch": name},
            source="timm",
            family=arch.split("_")[0],
            description=f"timm {name}",
            input_size=size,
            resize_size=int(round(size / crop_pct)),
            mean=tuple(cfg.mean) if cfg else IMAGENET_MEAN,
            std=tuple(cfg.std) if cfg else IMAGENET_STD,
            interpolation=cfg.interpolation if cfg else "bicubic",
            classifier=cfg.classifier if cfg and isinstance(cfg.classifier, str) else "head",
            pretrained_loader=functools.partial(_timm_pretrained_state, name) if cfg else None,
            distribution="timm",
        )


def _build_timm(arch: str, num_classes: int, **kwargs: Any) -> Any:
    import timm

    return timm.create_model(arch, pretrained=False, num_classes=num_classes, **kwargs)


def _timm_pretrained_state(arch: str) -> dict:
    """timm's published weights through its own hub client (cache first, download if online)."""
    import timm

    return timm.create_model(arch, pretrained=True).state_dict()


def _suggest(prefix: str, name: str, names: list[str]) -> str:
    return did_you_mean(f"{prefix}:{name}", [f"{prefix}:{n}" for n in names])
