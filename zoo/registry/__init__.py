"""Names -> model factories and dataset plugins, filled from entry points on first use."""

from zoo.registry.core import (
    DatasetInfo,
    ModelInfo,
    Registry,
    get_registry,
    resolve_callable,
)
from zoo.registry.plugins import PluginRecord

__all__ = [
    "DatasetInfo",
    "ModelInfo",
    "PluginRecord",
    "Registry",
    "get_registry",
    "resolve_callable",
]
