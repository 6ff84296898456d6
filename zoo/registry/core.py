"""The registry: a flat mapping of names to models and datasets, plus lazy namespaces.

Unprefixed names belong to zoo itself and to plugins; ``tv:<name>`` and ``timm:<name>`` are
namespaces answered on demand by torchvision and timm, so listing them never builds a model.
Nothing here imports torch: factories are given as callables or as ``"module:attr"`` strings
and resolved only when a model is built.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from zoo.errors import DuplicateNameError, UnknownNameError, ZooError, did_you_mean

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resolve_callable(target: Callable[..., Any] | str) -> Callable[..., Any]:
    """Turn ``"package.module:attr"`` into the object it names; pass callables through."""
    if callable(target):
        return target
    module_name, _, attr = target.partition(":")
    if not attr:
        raise ZooError(f"factory {target!r} must look like 'package.module:function'")
    return getattr(importlib.import_module(module_name), attr)


@dataclass(frozen=True)
class WeightsFile:
    """Published weights: where they come from and how to check them.

    ``sha256`` may be the full digest or the prefix that torchvision puts in its file names.
    """

    url: str
    sha256: str
    filename: str = ""

    @property
    def file_name(self) -> str:
        return self.filename or self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ModelInfo:
    """Everything zoo knows about a model before building it (metadata travels as data)."""

    name: str
    factory: Callable[..., Any] | str  # factory(num_classes=..., **kw) -> nn.Module
    factory_kwargs: dict[str, Any] = field(default_factory=dict)  # fixed arguments of this variant
    source: str = "zoo"  # zoo | tv | timm
    family: str = ""
    description: str = ""
    input_size: int = 224
    resize_size: int | None = None  # evaluation resize before the center crop
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
        return factory(num_classes=num_classes, **{**self.factory_kwargs, **kwargs})

    @property
    def has_pretrained(self) -> bool:
        return self.weights is not None or self.pretrained_loader is not None

    def preprocessing(self, image_size: int | None = None) -> dict[str, Any]:
        """The evaluation preprocessing that checkpoints and exports carry."""
        size = image_size or self.input_size
        resize = self.resize_size if image_size is None and self.resize_size else round(size / 0.875)
        return {
            "input_size": size,
            "resize_size": resize,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "channel_order": "RGB",
            "layout": "NCHW",
            "scale": "0-1 then (x - mean) / std",
        }


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


class NamespaceSource(Protocol):
    """A prefix namespace such as ``tv:`` answered by another library on demand."""

    prefix: str

    def names(self) -> list[str]: ...

    def info(self, name: str) -> ModelInfo: ...


@dataclass
class Registry:
    """Holds registered models and datasets; plugins fill it on first use."""

    models: dict[str, ModelInfo] = field(default_factory=dict)
    datasets: dict[str, DatasetInfo] = field(default_factory=dict)
    namespaces: dict[str, NamespaceSource] = field(default_factory=dict)
    discover_plugins: bool = True
    _loaded_groups: set[str] = field(default_factory=set)
    plugins: list[Any] = field(default_factory=list)

    # -- registration -------------------------------------------------------------------
    def add_model(self, info: ModelInfo) -> None:
        existing = self.models.get(info.name)
        if existing is not None:
            raise DuplicateNameError(
                f"model {info.name!r} from {info.distribution} is already registered by "
                f"{existing.distribution}; rename one of them"
            )
        if ":" in info.name:
            raise ZooError(f"model name {info.name!r} must not contain ':' (reserved for namespaces)")
        self.models[info.name] = info

    def add_dataset(self, info: DatasetInfo) -> None:
        existing = self.datasets.get(info.name)
        if existing is not None:
            raise DuplicateNameError(
                f"dataset {info.name!r} from {info.distribution} is already registered by "
                f"{existing.distribution}; rename one of them"
            )
        self.datasets[info.name] = info

    # -- lazy plugin loading ------------------------------------------------------------
    def ensure_loaded(self, group: str) -> None:
        if group in self._loaded_groups:
            return
        self._loaded_groups.add(group)
        if not self.discover_plugins:
            return
        from zoo.registry.plugins import load_entry_points

        self.plugins.extend(load_entry_points(self, group))

    # -- models -------------------------------------------------------------------------
    def _namespace(self, prefix: str) -> NamespaceSource:
        if prefix not in self.namespaces:
            from zoo.models.namespaces import make_namespace

            self.namespaces[prefix] = make_namespace(prefix)
        return self.namespaces[prefix]

    def list_models(self, pattern: str | None = None, source: str | None = None) -> list[str]:
        """Names matching an fnmatch pattern; ``source`` is zoo, tv, timm or all (default)."""
        sources = _sources(source)
        found: list[str] = []
        for src in sources:
            if src == "zoo":
                self.ensure_loaded("zoo.models")
                names: Iterable[str] = self.models
                prefix = ""
            else:
                names = self._namespace(src).names()
                prefix = f"{src}:"
            found.extend(prefix + n for n in sorted(names) if pattern is None or _matches(n, pattern))
        return found

    def model_info(self, name: str) -> ModelInfo:
        prefix, _, bare = name.rpartition(":")
        if prefix:
            if prefix not in NAMESPACES:
                raise UnknownNameError(
                    f"unknown model namespace {prefix!r} in {name!r}; use one of {', '.join(NAMESPACES)}"
                )
            return self._namespace(prefix).info(bare)
        self.ensure_loaded("zoo.models")
        if name in self.models:
            return self.models[name]
        hint = did_you_mean(name, self.models)
        raise UnknownNameError(
            f"unknown model {name!r}{hint}; `zoo list` shows zoo's models, "
            "prefix tv: or timm: for torchvision and timm models"
        )

    # -- datasets -----------------------------------------------------------------------
    def list_datasets(self, pattern: str | None = None) -> list[str]:
        self.ensure_loaded("zoo.datasets")
        return [n for n in sorted(self.datasets) if pattern is None or _matches(n, pattern)]

    def dataset_info(self, name: str) -> DatasetInfo:
        self.ensure_loaded("zoo.datasets")
        if name in self.datasets:
            return self.datasets[name]
        hint = did_you_mean(name, self.datasets)
        raise UnknownNameError(
            f"unknown dataset {name!r}{hint}; `zoo list --datasets` shows the registered ones, "
            "or pass a folder path"
        )

    def failed_plugins(self) -> Iterator[Any]:
        return (p for p in self.plugins if p.error)


NAMESPACES = ("tv", "timm")
SOURCES = ("zoo", *NAMESPACES)


def _sources(source: str | None) -> tuple[str, ...]:
    if source in (None, "all"):
        return SOURCES
    if source not in SOURCES:
        raise ZooError(f"unknown model source {source!r}; use one of zoo, tv, timm, all")
    return (source,)


def _matches(name: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(name.lower(), pattern.lower())


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry (created empty; plugins load on first lookup)."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = Registry()
    return _REGISTRY
