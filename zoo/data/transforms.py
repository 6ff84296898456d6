"""Preprocessing from a model's metadata plus augmentation presets (torchvision.transforms.v2).

The evaluation pipeline is fully described by the ``Preprocessing`` that checkpoints and exports
carry, so predict and the ONNX consumer rebuild exactly what training evaluated with.
"""

from __future__ import annotations

from dataclasses import dataclass

from torchvision.transforms import InterpolationMode, v2

from zoo.errors import DataError
from zoo.specs import Preprocessing

@dataclass(frozen=True)
class Preset:
    """One augmentation recipe, read by both paths that train: the per-image torchvision.transforms.v2
    pipeline in DataLoader workers (``train_transform``) and whole batches on the device (zoo.data.
    batch_augment). A policy (TrivialAugmentWide, RandAugment) runs first, on the uint8 image, in both."""

    name: str
    crop_scale: tuple[float, float] | None = None  # RandomResizedCrop's area range (ratio 3/4-4/3)
    pad_crop: bool = False  # CIFAR's: pad by size/8, random crop, no rescaling
    rotate: float = 0.0  # +- degrees about the centre, then a centre crop
    hflip: bool = True
    vflip: bool = False
    jitter: float = 0.0  # brightness, contrast and saturation, each +- this
    grayscale: float = 0.0  # probability
    policy: str | None = None  # "trivialaugment" | "randaugment"

    def policy_transform(self):
        """The policy as a v2 transform on a uint8 (3, H, W) tensor, or None."""
        if self.policy == "trivialaugment":
            return v2.TrivialAugmentWide()
        if self.policy == "randaugment":
            return v2.RandAugment()
        return None


# "light" is ImageNet's crop (0.08-1), made for long runs on a million images; "medium" keeps at least a
# third of the image, which short runs on a few thousand images from scratch can still fit
# (benchmarks/quality.py). "strong" is the seed food recipe.
PRESET_TABLE = {
    "none": Preset("none", hflip=False),
    "light": Preset("light", crop_scale=(0.08, 1.0)),
    "medium": Preset("medium", crop_scale=(0.35, 1.0)),
    "cifar": Preset("cifar", pad_crop=True),
    "strong": Preset("strong", rotate=45.0, vflip=True, jitter=0.2, grayscale=0.1),
    "trivialaugment": Preset("trivialaugment", crop_scale=(0.35, 1.0), policy="trivialaugment"),
    "randaugment": Preset("randaugment", crop_scale=(0.35, 1.0), policy="randaugment"),
}
PRESETS = ("auto", *PRESET_TABLE)
CROP_SCALE = {name: p.crop_scale for name, p in PRESET_TABLE.items() if p.crop_scale}
SHORT_RUN = 100  # epochs: below this a run from scratch gets "medium", not ImageNet's "light"


def auto_preset(input_size: int, from_scratch: bool = True, epochs: int = 0) -> tuple[str, str]:
    """(the preset `auto` means, why): the one rule, for runs (zoo.engine.defaults) and direct callers."""
    if input_size <= 64:
        return "cifar", f"{input_size} px images"
    if from_scratch and epochs < SHORT_RUN:
        return "medium", f"from scratch, {epochs} epochs"
    return "light", "fine-tuning weights" if not from_scratch else f"{epochs} epochs"


def resolve_preset(preset: str, input_size: int) -> str:
    if preset not in PRESETS:
        raise DataError(f"unknown augmentation preset {preset!r}; use one of {', '.join(PRESETS)}")
    return auto_preset(input_size)[0] if preset == "auto" else preset


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
    """The per-image training pipeline of a preset (PIL image -> normalised float tensor)."""
    size, interp = pre.input_size, InterpolationMode(pre.interpolation)
    recipe = PRESET_TABLE[resolve_preset(preset, size)]
    if recipe.name == "none":
        return eval_transform(pre)
    ops = [recipe.policy_transform()] if recipe.policy else []
    if pre.resize_mode != "crop":  # the whole image to its square first; the preset then works on the square
        ops = [*pre.eval_geometry().transforms[1:], *ops]
    if recipe.crop_scale:
        ops.append(v2.RandomResizedCrop(size, scale=recipe.crop_scale, interpolation=interp, antialias=True))
    elif recipe.pad_crop:
        ops += [v2.Resize(size, interpolation=interp, antialias=True), v2.CenterCrop(size),
                v2.RandomCrop(size, padding=size // 8, padding_mode="reflect")]
    else:
        ops.append(v2.Resize(pre.resize_size, interpolation=interp, antialias=True))
        if recipe.rotate:
            ops.append(v2.RandomRotation(recipe.rotate, interpolation=interp))
        ops.append(v2.CenterCrop(size))
    ops += [v2.RandomHorizontalFlip()] if recipe.hflip else []
    ops += [v2.RandomVerticalFlip()] if recipe.vflip else []
    if recipe.jitter:
        ops.append(v2.ColorJitter(brightness=recipe.jitter, contrast=recipe.jitter, saturation=recipe.jitter))
    if recipe.grayscale:
        ops.append(v2.RandomGrayscale(p=recipe.grayscale))
    return v2.Compose([v2.PILToTensor(), *ops, *pre.normalise().transforms])
