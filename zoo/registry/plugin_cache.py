"""What each third-party plugin registered last time, so listing names does not import its code.

A plugin's ``register`` runs on first use of the registry, which imports the plugin's module: a
plugin that is slow to import (or imports torch) would slow every ``zoo list``. When everything a
plugin registered is declarative (factories as "module:function" strings), the registrations are
kept in zoo's cache, keyed by the distribution's name and version, the entry point and the files of
the package that defines ``register`` (found without importing it; see ``key_for``), editable
installs included; records of uninstalled distributions are pruned. The next
process registers the same entries without importing anything; the plugin's code is imported when
a model or dataset of it is built. ``zoo plugins`` always loads plugins for real and refreshes this.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import logging
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

from zoo.specs import DatasetInfo, Layout, ModelInfo, NamespaceInfo, WeightsFile

log = logging.getLogger("zoo.plugins")
FORMAT = 1
ENTRY_TYPES = {"models": ModelInfo, "datasets": DatasetInfo, "namespaces": NamespaceInfo, "layouts": Layout}


def cache_file() -> Path:
    from zoo.hub import cache_dir

    return cache_dir("plugins", "registrations.json")


def key_for(ep: EntryPoint, group: str) -> str | None:
    """Identity of the plugin's code (found without importing it), or None when it cannot be told.

    The distribution's name and version, the entry point, and a digest of every Python file of the
    package that defines ``register`` (path, size, modification and status-change times): editing any
    module ``register`` imports, or rewriting one with the same size and an old mtime, loads the plugin
    for real again. Editable installs (pip install -e) are found through their own import finders."""
    dist = ep.dist
    if dist is None:
        return None
    package = _package_files(ep.value.partition(":")[0].split(".")[0])
    if not package:
        return None
    installed = [Path(dist.locate_file(f)) for f in (dist.files or []) if str(f).endswith(".py")]  # RECORD
    package = sorted(set(package) | {p for p in installed if p.is_file()})
    digest = hashlib.sha256()
    for path in package:
        stat = path.stat()
        digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ctime_ns}\n".encode())
    return f"{FORMAT}|{group}|{ep.name}|{ep.value}|{dist.name}|{dist.version}|{digest.hexdigest()[:24]}"


def _package_files(top_level: str) -> list[Path]:
    """The .py files of a top-level module or package, located by the import system's finders without
    running the package (find_spec of a top-level name executes nothing)."""
    try:
        spec = importlib.util.find_spec(top_level)
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    if spec.submodule_search_locations:
        return sorted(p for folder in spec.submodule_search_locations for p in Path(folder).rglob("*.py"))
    return [Path(spec.origin)] if spec.origin and Path(spec.origin).is_file() else []


def load(key: str) -> list[tuple[str, str, Any]] | None:
    """The staged entries recorded for ``key``, or None."""
    try:
        recorded = json.loads(cache_file().read_text()).get(key)
    except (OSError, ValueError):
        return None
    if not isinstance(recorded, list):
        return None
    try:
        return [(table, name, _from_json(table, data)) for table, name, data in recorded]
    except (TypeError, ValueError, KeyError):
        return None


def store(key: str, staged: list[tuple[str, str, Any]]) -> None:
    """Record a plugin's registrations if all are declarative; silently skip otherwise (or when the cache
    cannot be written: the cache only saves time)."""
    entries = []
    for table, name, entry in staged:
        data = _to_json(table, entry)
        if data is None:
            return
        entries.append([table, name, data])
    path = cache_file()
    try:
        current = json.loads(path.read_text()) if path.is_file() else {}
        current = {k: v for k, v in current.items() if not _same_plugin(k, key) and _still_installed(k)}
        current[key] = entries
        from zoo.files import atomic_write_json

        atomic_write_json(path, current)
    except (OSError, ValueError) as exc:
        log.debug("plugin registration cache not written: %s", exc)


def _same_plugin(old_key: str, key: str) -> bool:
    return old_key.split("|")[:5] == key.split("|")[:5]


def _still_installed(key: str) -> bool:
    """Records of distributions uninstalled since are pruned (they would only grow the file)."""
    from importlib.metadata import PackageNotFoundError, distribution

    parts = key.split("|")
    try:
        return len(parts) > 4 and distribution(parts[4]) is not None
    except PackageNotFoundError:
        return False


def _to_json(table: str, entry: Any) -> dict[str, Any] | None:
    if table not in ENTRY_TYPES:
        return None if not isinstance(entry, str) else {"source": entry}
    values = {f.name: getattr(entry, f.name) for f in dataclasses.fields(entry)}
    if any(callable(v) and not isinstance(v, type) for v in values.values()):
        return None  # a callable factory cannot be recorded: this plugin is imported every time
    if isinstance(values.get("weights"), WeightsFile):
        values["weights"] = dataclasses.asdict(values["weights"])
    try:
        json.dumps(values)
    except TypeError:
        return None
    return values


def _from_json(table: str, data: dict[str, Any]) -> Any:
    if table not in ENTRY_TYPES:
        return data["source"]
    if data.get("weights"):
        data = {**data, "weights": WeightsFile(**data["weights"])}
    for name in ("mean", "std", "folder_names"):
        if isinstance(data.get(name), list):
            data = {**data, name: tuple(data[name])}
    return ENTRY_TYPES[table](**data)
