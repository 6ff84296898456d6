"""What `zoo list 'tv:*'` and `zoo info NAME` print, remembered so a second call imports no library.

torchvision's and timm's listings need their packages imported (seconds); `zoo info` builds the model
to count its parameters (seconds more). Both answers depend only on the libraries' versions (and
zoo's), read from package metadata without importing anything; they are kept in zoo's cache under
that key and made again when a version changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

LIBRARIES = ("zoo", "torch", "torchvision", "timm")


def versions_key() -> str:
    found = []
    for name in LIBRARIES:
        try:
            found.append(f"{name}={version(name)}")
        except PackageNotFoundError:
            found.append(f"{name}=-")
    return ",".join(found)


def remembered(kind: str, key: str, compute: Callable[[], Any]) -> Any:
    """compute(), or what it returned last time for (kind, key, the libraries' versions)."""
    from zoo.files import atomic_write_json
    from zoo.hub import cache_dir

    path = cache_dir("listings", f"{kind}.json")
    full_key = f"{key}|{versions_key()}"
    try:
        stored = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        stored = {}
    if full_key in stored:
        return stored[full_key]
    value = compute()
    stored = {k: v for k, v in stored.items() if k.split("|", 1)[-1] == versions_key()}  # drop other versions
    stored[full_key] = value
    try:
        atomic_write_json(path, stored)
    except OSError:  # a read-only cache only costs time
        pass
    return value
