"""What zoo knows about a model, a dataset and an image pipeline, as plain data.

A leaf module: it imports nothing of zoo but the errors and no heavy library, so the registry,
the plugins, the models and the exporters can all use these types without importing each other.
Metadata travels with the weights as data (torchvision's ``Weights`` carry ``transforms`` and
``meta`` the same way): checkpoints and exports carry a ``Preprocessing``, so ``zoo predict`` and
an ONNX consumer never guess how an image becomes a tensor.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from zoo.errors import ZooError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("nearest", "nearest-exact", "bilinear", "bicubic")
CROP_RATIO = 0.875  # the classic ImageNet evaluation: resize to size / 0.875, centre-crop size
MAX_IMAGE_SIDE = 4096  # no classifier takes more; a metadata file saying 30000 is broken, not ambitious
# --resize: how an image of any shape becomes the model's square, as (resize_rule, crop) in the metadata.
# crop: the shorter side to resize_size, centre crop (ImageNet's; cuts off the ends of a long image);
# squash: both sides to input_size (keeps everything, distorts the aspect ratio);
# letterbox: the longer side to input_size, black bars around the rest (keeps everything undistorted).
RESIZE_MODES = {"crop": ("shorter_side", "center"), "squash": ("squash", "none"), "letterbox": ("letterbox", "none")}


def resolve_callable(target: Callable[..., Any] | str) -> Callable[..., Any]:
    """Turn ``"package.module:attr"`` into the object it names; pass callables through."""
    if callable(target):
        return target
    module_name, _, attr = str(target).partition(":")
    if not attr:
        raise ZooError(f"factory {target!r} must look like 'package.module:function'")
    return getattr(importlib.import_module(module_name), attr)


@dataclass(frozen=True)
class Preprocessing:
    """How a decoded RGB image becomes the model's input at evaluation time.

    Resize so the shorter side is ``resize_size`` (the longer side scaled by the same factor and
    truncated to an integer, as torchvision's ``Resize(int)`` does), centre-crop ``input_size``
    squared, scale 0-255 to 0-1, subtract ``mean`` and divide by ``std`` per channel (RGB, NCHW).
    ``resize_rule``/``crop`` name the other resize modes (RESIZE_MODES), which make the square
    without cropping; ``resize_size`` is then ``input_size``.
    """

    input_size: int
    resize_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    antialias: bool = True
    resize_rule: str = "shorter_side"
    crop: str = "center"
    channel_order: str = "RGB"
    layout: str = "NCHW"
    scale: str = "0-1 then (x - mean) / std"

    @classmethod
    def for_size(cls, size: int, **fields: Any) -> Preprocessing:
        """The classic evaluation preset for a size: resize to size / 0.875, centre-crop size."""
        return cls(input_size=size, resize_size=round(size / CROP_RATIO), **fields)

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["mean"], values["std"] = list(self.mean), list(self.std)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "metadata") -> Preprocessing:
        """Read and check what a checkpoint or export says (types and ranges), naming ``source`` if it is wrong."""
        if isinstance(values, Preprocessing):
            return values
        if not isinstance(values, Mapping):
            raise ZooError(f"{source}: 'preprocessing' must be an object, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        try:
            pre = cls(**{k: v for k, v in values.items() if k in known})
        except TypeError as exc:
            raise ZooError(f"{source}: 'preprocessing' lacks a field ({exc}); was it written by zoo?") from exc
        pre.check(source)
        return pre

    def check(self, source: str = "preprocessing") -> None:
        def bad(what: str) -> ZooError:
            return ZooError(f"{source}: {what}; the file looks damaged, export or train it again")

        for name in ("input_size", "resize_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_IMAGE_SIDE:
                raise bad(f"{name} {value!r} is not a whole number of pixels from 1 to {MAX_IMAGE_SIDE}")
        if self.resize_size < self.input_size:
            raise bad(f"resize_size {self.resize_size} is smaller than input_size {self.input_size}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if (not isinstance(value, (list, tuple)) or len(value) != 3
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
                raise bad(f"{name} {value!r} is not three numbers")
        if not all(math.isfinite(m) and -1e3 < m < 1e3 for m in self.mean):
            raise bad(f"mean {list(self.mean)} must be three finite numbers")
        if not all(0 < s < 1e3 for s in self.std):  # NaN fails this too
            raise bad(f"std {list(self.std)} must be three positive numbers")
        if self.interpolation not in INTERPOLATIONS:
            raise bad(f"interpolation {self.interpolation!r} is not one of {', '.join(INTERPOLATIONS)}")
        if (self.resize_rule, self.crop) not in RESIZE_MODES.values() or (self.channel_order, self.layout) != ("RGB", "NCHW"):
            raise bad(f"resize_rule {self.resize_rule!r} with crop {self.crop!r} ({self.channel_order}, {self.layout}) is "
                      "not a resize mode zoo knows (crop, squash, letterbox; RGB, NCHW)")
        if self.resize_mode != "crop" and self.resize_size != self.input_size:
            raise bad(f"resize_size {self.resize_size} must equal input_size {self.input_size} without a crop")

    def __post_init__(self) -> None:  # JSON gives lists; keep the dataclass hashable
        object.__setattr__(self, "mean", tuple(self.mean) if isinstance(self.mean, list) else self.mean)
        object.__setattr__(self, "std", tuple(self.std) if isinstance(self.std, list) else self.std)

    @property
    def resize_mode(self) -> str:
        """crop, squash or letterbox (RESIZE_MODES)."""
        return next((mode for mode, fields in RESIZE_MODES.items() if fields == (self.resize_rule, self.crop)), "crop")

    def with_resize(self, mode: str = "crop", crop_pct: float | None = None) -> Preprocessing:
        """This preprocessing with another resize mode; ``crop_pct`` (crop only): input_size / resize_size."""
        if mode not in RESIZE_MODES:
            raise ZooError(f"unknown resize mode {mode!r}; use crop, squash or letterbox")
        if crop_pct is not None and not 0.05 <= crop_pct <= 1:
            raise ZooError(f"crop_pct {crop_pct} must be from 0.05 to 1 (1: the crop is the whole shorter side)")
        if mode != "crop":
            if crop_pct is not None:
                raise ZooError(f"--crop-pct applies to --resize crop; {mode} keeps the whole image")
            resize = self.input_size
        else:
            resize = round(self.input_size / crop_pct) if crop_pct is not None else self.resize_size
        rule, crop = RESIZE_MODES[mode]
        return dataclasses.replace(self, resize_size=resize, resize_rule=rule, crop=crop)

    def describe(self) -> str:
        """The geometry in a few words, for plans and `zoo info`."""
        size = self.input_size
        if self.resize_mode == "squash":
            return f"squash to {size}x{size}"
        if self.resize_mode == "letterbox":
            return f"letterbox into {size}x{size} (black bars)"
        return f"resize {self.resize_size}, centre crop {size}"

    def eval_geometry(self):
        """torchvision.transforms.v2: PIL image or uint8 tensor -> uint8 tensor resized (in float, rounded to
        whole levels) and centre-cropped (or squashed / letterboxed to the square)."""
        import torch
        from torchvision.transforms import InterpolationMode, v2

        from zoo.imageops import FitSquare, RoundToUint8

        if self.resize_mode != "crop":
            return v2.Compose([v2.PILToTensor(), v2.ToDtype(torch.float32, scale=False),
                               FitSquare(self.input_size, self.resize_mode, self.interpolation, self.antialias),
                               RoundToUint8()])
        return v2.Compose([
            v2.PILToTensor(),
            v2.ToDtype(torch.float32, scale=False),
            v2.Resize(self.resize_size, interpolation=InterpolationMode(self.interpolation), antialias=self.antialias),
            RoundToUint8(),
            v2.CenterCrop(self.input_size),
        ])

    def normalise(self):
        """torchvision.transforms.v2: uint8 tensor -> float scaled to 0-1, minus mean, over std."""
        import torch
        from torchvision.transforms import v2

        return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(self.mean), std=list(self.std))])

    def eval_transform(self):
        """The whole evaluation pipeline (v2): PIL image or uint8 tensor -> normalised float tensor."""
        from torchvision.transforms import v2

        return v2.Compose([*self.eval_geometry().transforms, *self.normalise().transforms])


@dataclass(frozen=True)
class WeightsFile:
    """Published weights: where they come from and how to check them.

    ``sha256`` may be the full digest or the prefix that torchvision puts in its file names;
    ``file_name`` defaults to the URL's last part.
    """

    url: str
    sha256: str
    file_name: str = ""

    def __post_init__(self) -> None:
        if not self.file_name:
            object.__setattr__(self, "file_name", self.url.rsplit("/", 1)[-1])


@dataclass(frozen=True)
class ModelInfo:
    """Everything zoo knows about a model before building it."""

    name: str
    factory: Callable[..., Any] | str  # factory(num_classes=..., **kw) -> nn.Module
    factory_kwargs: dict[str, Any] = field(default_factory=dict)  # fixed arguments of this variant
    source: str = "zoo"  # zoo, or the namespace prefix (tv, timm, ...)
    family: str = ""
    description: str = ""
    input_size: int = 224
    resize_size: int | None = None  # evaluation resize before the centre crop (default size / 0.875)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    classifier: str = "fc"  # attribute that holds the classification head
    default_num_classes: int = 1000
    weights: WeightsFile | None = None  # published weights loaded by weights="DEFAULT"
    pretrained_loader: Callable[[], dict] | str | None = None  # for sources with their own hub
    distribution: str = "zoo"

    def build(self, num_classes: int, **kwargs: Any) -> Any:
        """A randomly initialised model with a num_classes head."""
        factory = resolve_callable(self.factory)
        try:
            return factory(num_classes=num_classes, **{**self.factory_kwargs, **kwargs})
        except ZooError:
            raise
        except Exception as exc:  # noqa: BLE001 - a plugin's factory may fail in any way: say whose it is
            first_line = (str(exc).splitlines() or [""])[0][:200]
            raise ZooError(f"the factory of model {self.name!r} (from {self.distribution}) failed: "
                           f"{type(exc).__name__}: {first_line}; report it to the plugin's authors") from exc

    @property
    def has_pretrained(self) -> bool:
        return self.weights is not None or self.pretrained_loader is not None

    def preprocessing(self, image_size: int | None = None) -> Preprocessing:
        """The evaluation preprocessing that checkpoints and exports carry (at another size: size / 0.875)."""
        size = image_size or self.input_size
        common = dict(mean=tuple(self.mean), std=tuple(self.std), interpolation=self.interpolation)
        if image_size is None and self.resize_size:
            return Preprocessing(input_size=size, resize_size=self.resize_size, **common)
        return Preprocessing.for_size(size, **common)


@dataclass(frozen=True)
class DatasetInfo:
    """A named dataset: where its files come from and how to read them."""

    name: str
    factory: Callable[..., Any] | str  # factory(root: Path | None, **kw) -> zoo.data.ImageDataset
    factory_kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    layout: str = ""
    num_classes: int | None = None
    url: str = ""
    checksum: str = ""  # "sha256:<hex>" or "md5:<hex>"
    download_size: str = ""
    embedded: bool = False  # needs no download at all
    folder_names: tuple[str, ...] = ()  # folders under a data root that hold it (default: its name)
    distribution: str = "zoo"


@dataclass(frozen=True)
class NamespaceInfo:
    """A prefix such as ``tv:`` whose models another library lists and builds on demand.

    ``source`` names a class (or factory) whose instance has ``names() -> list[str]`` and
    ``info(name) -> ModelInfo``; it is imported only when a name with the prefix is used.
    """

    prefix: str
    source: Callable[[], Any] | str
    description: str = ""
    distribution: str = "zoo"


@dataclass(frozen=True)
class Layout:
    """One way datasets are laid out on disk: how to recognise it and how to read it.

    ``detect(path) -> bool`` must be cheap (look at names, not pixels); ``read(path, *, val_ratio,
    seed) -> ImageDataset``. Either may be a ``"module:function"`` string, imported on first use.
    """

    name: str
    detect: Callable[..., bool] | str
    read: Callable[..., Any] | str
    description: str = ""
    distribution: str = "zoo"
