"""Name tables for models, datasets, namespaces, layouts and exporters, filled from entry points on first use."""

from zoo.registry.core import Registry, get_registry, list_plugins
from zoo.registry.plugins import PluginRecord

__all__ = ["PluginRecord", "Registry", "get_registry", "list_plugins"]
