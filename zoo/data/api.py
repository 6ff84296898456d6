"""Public dataset functions: list, describe, and create from a name or a path."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from zoo.data.dataset import ImageDataset
from zoo.errors import DataError, DownloadError
from zoo.registry.core import get_registry
from zoo.specs import DatasetInfo, resolve_callable

log = logging.getLogger("zoo.data")


def list_datasets(pattern: str | None = None) -> list[str]:
    return get_registry().list_datasets(pattern)


def dataset_info(name: str) -> DatasetInfo:
    return get_registry().dataset_info(name)


def data_roots(data_root: str | Path | None = None) -> list[Path]:
    """Where named datasets are looked for: --data-root, then $ZOO_DATA_ROOT, then the cache."""
    from zoo.hub import cache_dir

    roots = [Path(data_root).expanduser()] if data_root else []
    roots += [Path(p).expanduser() for p in os.environ.get("ZOO_DATA_ROOT", "").split(os.pathsep) if p]
    roots.append(cache_dir("datasets"))
    return roots


def looks_like_path(data: str) -> bool:
    """Registered names are plain words; anything with a folder separator, a suffix or on disk is a path."""
    return os.sep in data or "/" in data or data.startswith(".") or bool(Path(data).suffix) or Path(data).exists()


def create_dataset(
    data: str | Path,
    data_root: str | Path | None = None,
    layout: str | None = None,
    download: bool = True,
    check: bool = True,
    **kwargs: Any,
) -> ImageDataset:
    """A dataset from a registered name (``"food20"``) or a path (layout auto-detected).

    ``check`` raises a DataError when training could not start on it (an empty split, a class
    without training images); ``zoo data check`` passes False to report every problem instead.
    """
    from zoo.data.layouts import read_layout

    if isinstance(data, str) and "://" in data:  # packed shards anywhere fsspec reads (http, s3, gs, ...)
        from zoo.data.shards import read_shards

        dataset = read_shards(data)
    elif isinstance(data, Path) or looks_like_path(str(data)):
        dataset = read_layout(Path(data), layout, **kwargs)
    else:
        info = dataset_info(str(data))
        factory = resolve_callable(info.factory)
        options = {**info.factory_kwargs, **kwargs}
        if layout:
            options["layout"] = layout
        root = None if info.embedded else locate_dataset(info, data_root, download)
        dataset = factory(root=root, **_accepted(factory, options))
        dataset.name = info.name
    if check:
        dataset.check_usable()
    return dataset


def _accepted(factory, options: dict[str, Any]) -> dict[str, Any]:
    """Only the options a plugin's factory takes (val_ratio/seed mean nothing to a fixed split)."""
    import inspect

    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return options
    return {k: v for k, v in options.items() if k in params}


def find_local_dataset(info: DatasetInfo, data_root: str | Path | None = None) -> Path | None:
    """Where a named dataset is on this machine (the first data root holding it), or None."""
    for root in data_roots(data_root):
        for name in info.folder_names or (info.name,):
            if (root / name).exists():
                return root / name
    return None


def locate_dataset(info: DatasetInfo, data_root: str | Path | None = None, download: bool = True) -> Path:
    """The folder holding a named dataset; downloaded into the first root if absent and allowed."""
    found = find_local_dataset(info, data_root)
    if found is not None:
        return found
    roots = data_roots(data_root)
    target = roots[0] / (info.folder_names or (info.name,))[0]
    if download and info.url and info.checksum:
        try:
            return fetch_dataset(info, target)
        except DownloadError as exc:
            raise DataError(f"dataset {info.name} is not on this machine and {exc}") from exc
    searched = ", ".join(str(r) for r in roots)
    where = f"download {info.url} ({info.download_size}) and " if info.url else ""
    raise DataError(
        f"dataset {info.name} not found (looked in {searched}); {where}put it at {target} "
        "or point --data-root / ZOO_DATA_ROOT at its parent folder"
    )


def fetch_dataset(info: DatasetInfo, target: Path) -> Path:
    """Download a dataset archive (verified), extract it safely, and return its folder."""
    from zoo.hub import cache_dir, download_file, extract_archive

    archive = cache_dir("downloads") / info.url.rsplit("/", 1)[-1]
    if not archive.is_file():
        log.info("downloading %s (%s) from %s", info.name, info.download_size or "size unknown", info.url)
        download_file(info.url, archive, info.checksum, progress=True)
    extract_archive(archive, target)
    return target
