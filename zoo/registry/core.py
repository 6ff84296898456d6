"""The registry: name tables for models, datasets, model namespaces, dataset layouts, exporters and
training callbacks.

Unprefixed model names belong to zoo itself and to plugins; ``<prefix>:<name>`` is answered on
demand by a namespace a plugin registered (zoo's own plugin registers ``tv`` for torchvision and
``timm`` for timm), so listing never builds a model. Everything is filled from entry points on
first use. Nothing here imports torch: factories are ``"module:attr"`` strings or callables,
resolved only when something is built.
"""

from __future__ import annotations

from typing import Any

from zoo.errors import ZooError
from zoo.names import NameTable, matches
from zoo.registry.plugins import GROUPS, PluginRecord, load_entry_points
from zoo.specs import DatasetInfo, Layout, ModelInfo, NamespaceInfo, resolve_callable

OWN_SOURCE = "zoo"  # unprefixed names: zoo's models and plugins'


class Registry:
    """Holds what plugins registered; each entry-point group loads on first use of its tables."""

    def __init__(self, discover_plugins: bool = True) -> None:
        self.models: NameTable[ModelInfo] = NameTable(
            "model", "`zoo list` shows zoo's models, prefix tv: or timm: for torchvision and timm models")
        self.datasets: NameTable[DatasetInfo] = NameTable(
            "dataset", "`zoo list --datasets` shows the registered ones, or pass a folder path")
        self.namespaces: NameTable[NamespaceInfo] = NameTable("model namespace", "`zoo list --source all` lists them")
        self.layouts: NameTable[Layout] = NameTable("dataset layout", "`zoo data check PATH` detects it")
        self.exporters: NameTable[Any] = NameTable("export format", "`zoo export --list-formats` shows them")
        self.callbacks: NameTable[Any] = NameTable("training callback", "`zoo plugins` lists them")
        self.discover_plugins = discover_plugins
        self.use_plugin_cache = True  # list names from plugins' recorded registrations (see plugin_cache)
        self.plugins: list[PluginRecord] = []  # one per entry point loaded
        self._loaded_groups: set[str] = set()
        self._namespace_sources: dict[str, Any] = {}

    # -- registration (plugins go through zoo.plugin.PluginContext; these are for tests and scripts) ----------
    def add_model(self, info: ModelInfo) -> None:
        if ":" in info.name:
            raise ZooError(f"model name {info.name!r} must not contain ':' (reserved for namespaces)")
        self.models.add(info.name, info, info.distribution)

    def add_dataset(self, info: DatasetInfo) -> None:
        self.datasets.add(info.name, info, info.distribution)

    def tables(self) -> dict[str, NameTable]:
        return {"models": self.models, "datasets": self.datasets, "namespaces": self.namespaces,
                "layouts": self.layouts, "exporters": self.exporters, "callbacks": self.callbacks}

    # -- lazy plugin loading ----------------------------------------------------------------------------------
    def ensure_loaded(self, group: str) -> None:
        if group in self._loaded_groups:
            return
        self._loaded_groups.add(group)
        if not self.discover_plugins:
            return
        self.plugins.extend(load_entry_points(self, group, self.use_plugin_cache))

    # -- models -----------------------------------------------------------------------------------------------
    def sources(self) -> list[str]:
        """'zoo' (unprefixed names) and every registered namespace prefix."""
        self.ensure_loaded("zoo.models")
        return [OWN_SOURCE, *self.namespaces.list()]

    def namespace(self, prefix: str):
        """The object answering ``prefix:`` names, created on first use."""
        self.ensure_loaded("zoo.models")
        if prefix not in self._namespace_sources:
            info = self.namespaces.get(prefix)
            self._namespace_sources[prefix] = resolve_callable(info.source)()
        return self._namespace_sources[prefix]

    def list_models(self, pattern: str | None = None, source: str | None = None) -> list[str]:
        """Names matching an fnmatch pattern; ``source`` is zoo, a namespace prefix or all (default).

        A prefix in the pattern (``tv:mobilenet*``) selects that namespace.
        """
        if pattern and ":" in pattern:
            source, _, pattern = pattern.partition(":")
        found: list[str] = []
        for src in self._pick_sources(source):
            if src == OWN_SOURCE:
                names, prefix = self.models.list(), ""
            else:
                names, prefix = self.namespace(src).names(), f"{src}:"
            found.extend(prefix + n for n in sorted(names) if pattern is None or matches(n, pattern))
        return found

    def model_info(self, name: str) -> ModelInfo:
        prefix, colon, bare = name.partition(":")
        if colon:
            return self.namespace(prefix).info(bare)
        self.ensure_loaded("zoo.models")
        return self.models.get(name)

    def _pick_sources(self, source: str | None) -> list[str]:
        sources = self.sources()
        if source in (None, "all"):
            return sources
        if source not in sources:
            raise ZooError(f"unknown model source {source!r}; use one of {', '.join(sources)}, all")
        return [source]

    # -- datasets and layouts -----------------------------------------------------------------------------------
    def list_datasets(self, pattern: str | None = None) -> list[str]:
        self.ensure_loaded("zoo.datasets")
        return sorted(self.datasets.list(pattern))

    def dataset_info(self, name: str) -> DatasetInfo:
        self.ensure_loaded("zoo.datasets")
        return self.datasets.get(name)

    def dataset_layouts(self) -> list[Layout]:
        """Layouts in the order they are tried: plugins' first (more specific), then zoo's own."""
        self.ensure_loaded("zoo.datasets")
        layouts = [layout for _, layout in self.layouts.items()]
        return [lay for lay in layouts if lay.distribution != "zoo"] + [lay for lay in layouts if lay.distribution == "zoo"]


_REGISTRY: Registry | None = None


def list_plugins() -> list[PluginRecord]:
    """Load every plugin group for real (importing each plugin) and return one record per entry point."""
    registry = get_registry()
    registry.use_plugin_cache = False
    for group in GROUPS:
        registry.ensure_loaded(group)
    return list(registry.plugins)


def get_registry() -> Registry:
    """The process-wide registry (created empty; plugins load on first lookup)."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = Registry()
    return _REGISTRY
