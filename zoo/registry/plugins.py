"""Entry-point discovery: each plugin is loaded in isolation and its outcome recorded.

A plugin's entry point names a function ``register(ctx)`` (see ``zoo.plugin``). What it registers
is staged and committed only when the whole function succeeded, so a broken plugin registers
nothing, is listed by ``zoo plugins`` with a one-line reason, and never breaks other commands:
not by raising, not by calling ``sys.exit``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

import zoo.registry.plugin_cache as plugin_cache
from zoo.plugin import PluginContext

if TYPE_CHECKING:
    from zoo.registry.core import Registry

log = logging.getLogger("zoo.plugins")

GROUPS = ("zoo.models", "zoo.datasets", "zoo.exporters", "zoo.callbacks")
OWN_DISTRIBUTION = "zoo"


@dataclass
class PluginRecord:
    """What happened when one entry point was loaded: what it registered, or why it failed."""

    name: str
    group: str
    distribution: str
    value: str
    registered: dict[str, list[str]] = field(default_factory=dict)  # table -> names
    error: str | None = None
    cached: bool = False  # registered from zoo's record of its last load, its code not imported

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def models(self) -> list[str]:
        return self.registered.get("models", [])

    @property
    def datasets(self) -> list[str]:
        return self.registered.get("datasets", [])


def load_entry_points(registry: Registry, group: str, use_cache: bool = True) -> list[PluginRecord]:
    """Load every entry point of a group into the registry, zoo's own first."""
    found = sorted(entry_points(group=group), key=_load_order)
    return [load_plugin(registry, ep, group, use_cache) for ep in found]


def load_plugin(registry: Registry, ep: EntryPoint, group: str, use_cache: bool = True) -> PluginRecord:
    distribution = ep.dist.name if ep.dist is not None else "unknown"
    record = PluginRecord(name=ep.name, group=group, distribution=distribution, value=ep.value)
    ctx = PluginContext(distribution)
    key = plugin_cache.key_for(ep, group) if distribution != OWN_DISTRIBUTION else None
    staged = plugin_cache.load(key) if key and use_cache else None
    if staged is not None:  # what it registered last time, without importing its code
        ctx.staged = staged
        try:
            commit(registry, ctx)
        except Exception as exc:  # noqa: BLE001 - e.g. a name another plugin took since: load it for real
            log.debug("cached registrations of %s not used: %s", distribution, exc)
        else:
            record.cached = True
            return _registered(record, ctx)
        ctx = PluginContext(distribution)
    try:
        register = ep.load()
        register(ctx)
        commit(registry, ctx)
    except ModuleNotFoundError as exc:  # the plugin or one of its dependencies is missing
        record.error = f"missing module {exc.name!r} (install it, or uninstall {distribution})"
    except SystemExit as exc:  # a plugin calling sys.exit must not end zoo
        record.error = f"called sys.exit({exc.code!r}) while loading"
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - a plugin may fail in any way (even a BaseException); report, go on
        record.error = f"{type(exc).__name__}: {_first_line(exc)}"
    if record.error:
        log.warning("plugin %s from %s failed to load: %s", ep.name, distribution, record.error)
        return record
    if key:
        plugin_cache.store(key, ctx.staged)
    return _registered(record, ctx)


def _registered(record: PluginRecord, ctx: PluginContext) -> PluginRecord:
    for table, name, _ in ctx.staged:
        record.registered.setdefault(table, []).append(name)
    return record


def commit(registry: Registry, ctx: PluginContext) -> None:
    """Add all staged entries, or none of them if any name is taken."""
    trial = {table: registry.tables()[table].copy() for table in {t for t, _, _ in ctx.staged}}
    for table, name, entry in ctx.staged:
        trial[table].add(name, entry, ctx.distribution)  # raises DuplicateNameError naming both sources
    for table, copy in trial.items():
        registry.tables()[table].update(copy)


def _load_order(ep: EntryPoint) -> tuple[int, str]:
    own = ep.dist is not None and ep.dist.name == OWN_DISTRIBUTION
    return (0 if own else 1, ep.name)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"
