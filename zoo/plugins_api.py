"""What plugins were found, what they registered, and which failed."""

from __future__ import annotations

from zoo.registry.core import get_registry
from zoo.registry.plugins import GROUPS, PluginRecord


def list_plugins() -> list[PluginRecord]:
    """Load every plugin group and return one record per entry point."""
    registry = get_registry()
    for group in GROUPS:
        registry.ensure_loaded(group)
    return list(registry.plugins)
