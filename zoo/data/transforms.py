"""Preprocessing from a model's metadata plus augmentation presets (torchvision.transforms.v2).

The evaluation pipeline is fully described by the ``Preprocessing`` that checkpoints and exports
carry, so predict and the ONNX consumer rebuild exactly what training evaluated with.
"""

from __future__ import annotations

from torchvision.transforms import InterpolationMode, v2

from zoo.errors import DataError
from zoo.specs import Preprocessing

PRESETS = ("auto", "none", "medium", "light", "strong", "cifar")
# RandomResizedCrop's area range per preset: "light" is ImageNet's (0.08, 1), made for long runs on a
# million images; "medium" keeps at least a third of the image, which short runs on a few thousand
# images from scratch can still fit (benchmarks/quality.py).
CROP_SCALE = {"light": (0.08, 1.0), "medium": (0.35, 1.0)}


def resolve_preset(preset: str, input_size: int) -> str:
    if preset not in PRESETS:
        raise DataError(f"unknown augmentation preset {preset!r}; use one of {', '.join(PRESETS)}")
    if preset == "auto":
        return "cifar" if input_size <= 64 else "light"
    return preset


def eval_geometry(pre: Preprocessing) -> v2.Compose:
    """PIL image or uint8 tensor -> uint8 tensor: resize the shorter side, centre-crop."""
    return pre.eval_geometry()


def eval_transform(pre: Preprocessing) -> v2.Compose:
    """Resize the shorter side, centre-crop, scale to 0-1, normalise."""
    return pre.eval_transform()


def scale_and_normalise(pre: Preprocessing) -> v2.Compose:
    """The evaluation transform's last steps, for pixels an exact evaluation cache already cropped."""
    return pre.normalise()


def train_transform(pre: Preprocessing, preset: str) -> v2.Compose:
    size, interp = pre.input_size, InterpolationMode(pre.interpolation)
    preset = resolve_preset(preset, size)
    if preset == "none":
        return eval_transform(pre)
    if preset in CROP_SCALE:
        ops = [v2.RandomResizedCrop(size, scale=CROP_SCALE[preset], interpolation=interp, antialias=True),
               v2.RandomHorizontalFlip()]
    elif preset == "cifar":
        ops = [v2.Resize(size, interpolation=interp, antialias=True), v2.CenterCrop(size),
               v2.RandomCrop(size, padding=size // 8, padding_mode="reflect"), v2.RandomHorizontalFlip()]
    else:  # strong: the food recipe
        ops = [
            v2.Resize(pre.resize_size, interpolation=interp, antialias=True),
            v2.RandomRotation(45, interpolation=interp),
            v2.CenterCrop(size),
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
            v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
            v2.RandomGrayscale(p=0.1),
        ]
    return v2.Compose([v2.PILToTensor(), *ops, *pre.normalise().transforms])
