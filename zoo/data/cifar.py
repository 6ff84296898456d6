"""CIFAR-10/100 in torchvision's python-pickle format (folders or the official .tar.gz).

The batches are pickles, so they are read with an unpickler that allows plain data only (dicts,
lists, strings, numpy arrays): a doctored file cannot run code. Each batch is checked (keys,
shape, as many labels as images, labels within the classes) before anything trains on it.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from zoo.data.dataset import ArrayImages, ImageDataset
from zoo.errors import DataError

CIFAR_FOLDERS = ("cifar-10-batches-py", "cifar-100-python")
PIXELS = 3 * 32 * 32


def read_cifar(path: Path, val_ratio: float = 0.2, seed: int = 0) -> ImageDataset:
    if path.is_file():  # the official .tar.gz: extract once into zoo's cache
        path = extracted_archive(path)
    for folder in CIFAR_FOLDERS:
        if (path / folder).is_dir():
            path = path / folder
    if (path / "data_batch_1").is_file() or (path / "test_batch").is_file():
        train_files = sorted(path.glob("data_batch_*"))
        test_files = [path / "test_batch"]
        meta, names_key, label_key = path / "batches.meta", "label_names", "labels"
    elif (path / "train").is_file():
        train_files, test_files = [path / "train"], [path / "test"]
        meta, names_key, label_key = path / "meta", "fine_label_names", "fine_labels"
    else:
        raise DataError(f"{path} holds no CIFAR batches (data_batch_N/test_batch or train/test)")
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in _field(_unpickle(meta), names_key, meta)]
    splits = {}
    for split, files in (("train", train_files), ("test", test_files)):
        batches = [_checked_batch(f, label_key, len(classes)) for f in files if f.is_file()]
        if batches:
            images = np.concatenate([b[0] for b in batches]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()
            splits[split] = ArrayImages(images, np.concatenate([b[1] for b in batches]))
    return ImageDataset(name=path.parent.name if path.name in CIFAR_FOLDERS else path.name,
                        classes=classes, splits=splits, layout="cifar", root=str(path))


def extracted_archive(archive: Path) -> Path:
    """The archive extracted into zoo's cache, keyed by its name, size and modification time (so another
    file of the same name is extracted anew, not served the old contents)."""
    from zoo.hub import cache_dir, extract_archive

    stat = archive.stat()
    target = cache_dir("extracted", f"{archive.name.split('.')[0]}-{stat.st_size}-{stat.st_mtime_ns}")
    if not target.exists():
        extract_archive(archive, target)
    return target


def _checked_batch(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    data, labels = _field(batch, "data", path), _field(batch, label_key, path)
    try:
        data = np.asarray(data, dtype=np.uint8)
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: 'data' or '{label_key}' is not numeric ({exc})") from exc
    if data.ndim != 2 or data.shape[1] != PIXELS:
        raise DataError(f"{path}: 'data' has shape {data.shape}; a CIFAR batch holds (N, {PIXELS}) uint8 rows")
    if labels.ndim != 1 or len(labels) != len(data):
        raise DataError(f"{path}: {len(data)} images but {labels.size} labels; the batch is damaged")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        bad = int(labels[(labels < 0) | (labels >= num_classes)][0])
        raise DataError(f"{path}: label {bad} is outside the {num_classes} classes of the meta file")
    return data, labels


def _field(batch: Any, key: str, path: Path) -> Any:
    if not isinstance(batch, dict):
        raise DataError(f"{path} holds a {type(batch).__name__}, not a CIFAR batch (a dict)")
    if key not in batch:
        raise DataError(f"{path} has no '{key}' entry (found: {', '.join(map(str, list(batch)[:6]))}); "
                        "is it a CIFAR batch?")
    return batch[key]


class _PlainDataUnpickler(pickle.Unpickler):
    """CIFAR's batches are pickles of dicts, lists and numpy arrays: allow nothing else, so a
    doctored file cannot run code. ``_codecs.encode`` is how Python 3 writes bytes at protocol 2
    (a batch re-pickled that way is still plain data)."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise DataError(f"CIFAR file refers to {module}.{name}, which a CIFAR batch never does; refusing it")


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"CIFAR file {path} is missing; the folder looks incomplete")
    with open(path, "rb") as f:
        try:
            batch = _PlainDataUnpickler(f, encoding="latin1").load()
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001 - a damaged pickle fails in many ways
            raise DataError(f"{path} is not a readable CIFAR batch ({type(exc).__name__}: {exc})") from exc
    if isinstance(batch, dict):  # pickled with bytes keys (b"data"): the same batch
        batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    return batch
