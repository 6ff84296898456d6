"""The plugin author's API: what a ``register(ctx)`` function may call.

A plugin is a normal distribution with entry points in the groups ``zoo.models``,
``zoo.datasets`` and ``zoo.exporters``, each naming a function that takes a ``PluginContext``::

    [project.entry-points."zoo.models"]
    example = "zoo_example:register_models"

    def register_models(ctx: zoo.plugin.PluginContext) -> None:
        ctx.add_model("example_tinynet", "zoo_example.models:tinynet", input_size=32, classifier="fc")

Give factories as ``"module:function"`` strings so listing never imports your code. Everything a
register function adds is staged and committed only if the whole function succeeds: a plugin
that fails registers nothing, is listed by ``zoo plugins`` with its reason, and breaks nothing else.
zoo's own models, datasets, namespaces, layouts and export formats register through this same API.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from zoo.specs import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DatasetInfo,
    Layout,
    ModelInfo,
    NamespaceInfo,
    Preprocessing,
    WeightsFile,
)

__all__ = ["PluginContext", "WeightsFile", "Layout", "Preprocessing", "IMAGENET_MEAN", "IMAGENET_STD"]

Factory = Callable[..., Any] | str


class PluginContext:
    """Stages one plugin's registrations; ``staged`` is (table, name, entry) in call order."""

    def __init__(self, distribution: str) -> None:
        self.distribution = distribution
        self.staged: list[tuple[str, str, Any]] = []

    def add_model(
        self,
        name: str,
        factory: Factory,
        *,
        factory_kwargs: dict[str, Any] | None = None,
        family: str = "",
        description: str = "",
        input_size: int = 224,
        resize_size: int | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        interpolation: str = "bilinear",
        classifier: str = "fc",
        default_num_classes: int = 1000,
        weights: WeightsFile | None = None,
        pretrained_loader: Factory | None = None,
    ) -> None:
        """A model: ``factory(num_classes=N, **factory_kwargs)`` returns an ``nn.Module``.

        ``input_size``/``resize_size``/``mean``/``std``/``interpolation`` describe its evaluation
        preprocessing (resize the shorter side to resize_size, default input_size / 0.875, then
        centre-crop input_size); ``classifier`` names the attribute holding the head (``fc``,
        ``classifier``, ``head``, or dotted ``head.fc``); ``weights`` are published weights
        loaded by ``weights="DEFAULT"``.
        """
        if ":" in name:
            raise ValueError(f"model name {name!r} must not contain ':' (reserved for namespaces)")
        info = ModelInfo(
            name=name, factory=factory, factory_kwargs=dict(factory_kwargs or {}), family=family,
            description=description, input_size=input_size, resize_size=resize_size, mean=tuple(mean),
            std=tuple(std), interpolation=interpolation, classifier=classifier,
            default_num_classes=default_num_classes, weights=weights, pretrained_loader=pretrained_loader,
            distribution=self.distribution,
        )
        self.staged.append(("models", name, info))

    def add_dataset(
        self,
        name: str,
        factory: Factory,
        *,
        factory_kwargs: dict[str, Any] | None = None,
        description: str = "",
        layout: str = "",
        num_classes: int | None = None,
        url: str = "",
        checksum: str = "",
        download_size: str = "",
        embedded: bool = False,
        folder_names: Sequence[str] = (),
    ) -> None:
        """A named dataset: ``factory(root=<folder or None>, **factory_kwargs)`` returns an ImageDataset.

        ``embedded`` datasets need no files (root is None). Others are looked for as a folder
        named ``name`` (or one of ``folder_names``) under the data roots, and downloaded from
        ``url`` when a ``checksum`` ("sha256:<hex>" or "md5:<hex>") is given.
        """
        info = DatasetInfo(
            name=name, factory=factory, factory_kwargs=dict(factory_kwargs or {}), description=description,
            layout=layout, num_classes=num_classes, url=url, checksum=checksum, download_size=download_size,
            embedded=embedded, folder_names=tuple(folder_names), distribution=self.distribution,
        )
        self.staged.append(("datasets", name, info))

    def add_namespace(self, prefix: str, source: Factory, *, description: str = "") -> None:
        """A whole family of models under ``prefix:``: ``source()`` gives an object with
        ``names() -> list[str]`` and ``info(name) -> ModelInfo``, created on first use of the prefix."""
        if not prefix.isidentifier():
            raise ValueError(f"namespace prefix {prefix!r} must be a plain word")
        self.staged.append(("namespaces", prefix, NamespaceInfo(prefix, source, description, self.distribution)))

    def add_layout(self, name: str, *, detect: Factory, read: Factory, description: str = "") -> None:
        """A dataset layout: ``detect(path) -> bool`` (cheap: names, not pixels) and
        ``read(path, *, val_ratio, seed) -> ImageDataset``. Plugins' layouts are tried before zoo's own."""
        self.staged.append(("layouts", name, Layout(name, detect, read, description, self.distribution)))

    def add_exporter(self, name: str, source: Factory) -> None:
        """An export format: ``source()`` gives a ``zoo.exporter.ExportFormat`` (imported on first use)."""
        self.staged.append(("exporters", name, source))

    def add_callback(self, name: str, source: Factory) -> None:
        """A training callback selected with `zoo finetune --callback NAME[:key=value,...]`: ``source(**options)``
        gives an object with any of the hooks of ``zoo.Callback`` (imported only when a run selects it)."""
        self.staged.append(("callbacks", name, source))
