"""Entry-point discovery: each plugin is loaded in isolation and its outcome recorded.

A plugin's entry point (group ``zoo.models`` or ``zoo.datasets``) names a function
``register(ctx)`` that calls ``ctx.add_model(...)`` / ``ctx.add_dataset(...)``. Registrations are
staged and committed only when the whole function succeeded, so a broken plugin registers
nothing, is listed by ``zoo plugins`` with a one-line reason, and never breaks other commands.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

from zoo.registry.core import DatasetInfo, ModelInfo

if TYPE_CHECKING:
    from zoo.registry.core import Registry

log = logging.getLogger("zoo.plugins")

GROUPS = ("zoo.models", "zoo.datasets")
OWN_DISTRIBUTION = "zoo"


@dataclass
class PluginRecord:
    """What happened when one entry point was loaded."""

    name: str
    group: str
    distribution: str
    value: str
    models: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class PluginContext:
    """The object a plugin's register function receives; stages what it registers."""

    def __init__(self, distribution: str) -> None:
        self.distribution = distribution
        self.models: list[ModelInfo] = []
        self.datasets: list[DatasetInfo] = []

    def add_model(self, name: str, factory: Any, **meta: Any) -> None:
        self.models.append(ModelInfo(name=name, factory=factory, distribution=self.distribution, **meta))

    def add_dataset(self, name: str, factory: Any, **meta: Any) -> None:
        self.datasets.append(
            DatasetInfo(name=name, factory=factory, distribution=self.distribution, **meta)
        )


def load_entry_points(registry: Registry, group: str) -> list[PluginRecord]:
    """Load every entry point of a group into the registry, zoo's own first."""
    found = sorted(entry_points(group=group), key=_load_order)
    return [load_plugin(registry, ep, group) for ep in found]


def load_plugin(registry: Registry, ep: EntryPoint, group: str) -> PluginRecord:
    distribution = ep.dist.name if ep.dist is not None else "unknown"
    record = PluginRecord(name=ep.name, group=group, distribution=distribution, value=ep.value)
    ctx = PluginContext(distribution)
    try:
        register = ep.load()
        register(ctx)
        _commit(registry, ctx)
    except ModuleNotFoundError as exc:  # the plugin or one of its dependencies is missing
        record.error = f"missing module {exc.name!r} (install it, or uninstall {distribution})"
    except Exception as exc:  # noqa: BLE001 - a plugin may fail in any way; we report and go on
        record.error = f"{type(exc).__name__}: {_first_line(exc)}"
    if record.error:
        log.warning("plugin %s from %s failed to load: %s", ep.name, distribution, record.error)
        return record
    record.models = [m.name for m in ctx.models]
    record.datasets = [d.name for d in ctx.datasets]
    return record


def _commit(registry: Registry, ctx: PluginContext) -> None:
    """Add all staged entries, or none of them if any name is taken."""
    from zoo.registry.core import Registry

    trial = Registry(models=dict(registry.models), datasets=dict(registry.datasets))
    for info in ctx.models:
        trial.add_model(info)  # raises DuplicateNameError naming both sources
    for dinfo in ctx.datasets:
        trial.add_dataset(dinfo)
    registry.models.update(trial.models)
    registry.datasets.update(trial.datasets)


def _load_order(ep: EntryPoint) -> tuple[int, str]:
    own = ep.dist is not None and ep.dist.name == OWN_DISTRIBUTION
    return (0 if own else 1, ep.name)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"
