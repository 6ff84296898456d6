"""Dataset layouts: one ordered table of (name, detect, read), filled by plugins (zoo's own first).

zoo's own, in the order they are tried (a plugin's layouts are tried before these):

0. shards       `zoo data pack`'s WebDataset shards: a folder with dataset.json (zoo.data.shards)
1. cifar        torchvision's cifar-10-batches-py/ or cifar-100-python/ pickles, or their .tar.gz
2. listfile     train.txt + val.txt/valid.txt/test.txt with 'relative/path.jpg <label>', optional classes.txt
3. jsonl        {"path": ..., "label": name|index, "split": optional} per line: one .jsonl file, or a
                folder of train.jsonl + val/valid/test.jsonl whose splits come from the files
4. csv          train.csv + val.csv (or valid/test) with a header 'file,labels', labels space-separated
                class names (Kaggle's multi-label sets), optional classes.txt
5. imagefolder  root/train/<class>/*.jpg, root/val|test/<class>/*.jpg
6. classfolders root/<class>/*.jpg with no split (zoo splits it, stratified and seeded)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from zoo.data.dataset import EVAL_SPLIT_NAMES, FileImages, ImageDataset, strata
from zoo.data.decode import iter_class_folders, list_folders, list_image_files, warn_skipped
from zoo.data.scan_record import files_identity, scan_remembered
from zoo.errors import DataError
from zoo.specs import Layout, resolve_callable

log = logging.getLogger("zoo.data")


# -- detection: names only, never pixels ------------------------------------------------------------------------
SHARDS_CARD, SHARDS_FORMAT = "dataset.json", "zoo-shards/1"  # what `zoo data pack` writes (zoo.data.shards)


def is_shards(path: Path) -> bool:
    card = path / SHARDS_CARD if path.is_dir() else path
    if card.name != SHARDS_CARD or not card.is_file():
        return False
    try:
        return json.loads(card.read_text()).get("format") == SHARDS_FORMAT
    except (OSError, ValueError):
        return False


def is_cifar(path: Path) -> bool:
    from zoo.data.cifar import CIFAR_FOLDERS

    if path.is_file():
        return path.name.endswith((".tar.gz", ".tgz")) and "cifar" in path.name
    names = _names(path)
    return bool(names & set(CIFAR_FOLDERS)) or {"data_batch_1", "test_batch"} <= names or {"train", "meta", "test"} <= names


def is_listfile(path: Path) -> bool:
    return path.is_dir() and (path / "train.txt").is_file()


def is_jsonl(path: Path) -> bool:
    return path.suffix == ".jsonl" if path.is_file() else any(n.endswith(".jsonl") for n in _names(path))


def is_csv(path: Path) -> bool:
    return path.is_dir() and (path / "train.csv").is_file()


def is_imagefolder(path: Path) -> bool:
    return path.is_dir() and (path / "train").is_dir() and any((path / s).is_dir() for s in EVAL_SPLIT_NAMES)


def is_classfolders(path: Path) -> bool:
    return path.is_dir() and any(list_image_files(d) for d in iter_class_folders(path))


def _names(path: Path) -> set[str]:
    return {p.name for p in path.iterdir()} if path.is_dir() else set()


def layouts() -> list[Layout]:
    from zoo.registry.core import get_registry

    return get_registry().dataset_layouts()


def detect_layout(path: Path) -> str:
    """Name the layout of a file or folder, or raise a DataError saying what was expected."""
    if not path.exists():
        raise DataError(f"data path {path} does not exist; pass a dataset name (`zoo list --datasets`) or a folder")
    for layout in layouts():
        if resolve_callable(layout.detect)(path):
            return layout.name
    expected = "; ".join(layout.description or layout.name for layout in layouts())
    if path.is_file():
        raise DataError(f"{path} is a file zoo cannot read; expected one of: {expected}")
    raise DataError(f"no dataset layout found in {path}: expected one of: {expected}")


def read_layout(path: Path, layout: str | None = None, val_ratio: float = 0.2, seed: int = 0) -> ImageDataset:
    """Read a dataset from disk; bad image files are skipped with one warning each."""
    from zoo.registry.core import get_registry

    path = Path(path).expanduser()
    name = layout or detect_layout(path)
    registry = get_registry()
    registry.ensure_loaded("zoo.datasets")
    chosen = registry.layouts.get(name)
    dataset = resolve_callable(chosen.read)(path, val_ratio=val_ratio, seed=seed)
    drop_bad_files(dataset)
    return dataset


# -- the folder layouts --------------------------------------------------------------------------------------------
def read_imagefolder(root: Path, val_ratio: float = 0.2, seed: int = 0) -> ImageDataset:
    split_dirs = [d for d in ("train", *EVAL_SPLIT_NAMES) if (root / d).is_dir()]
    classes = [d.name for d in iter_class_folders(root / "train")]
    if not classes:
        raise DataError(f"{root / 'train'} has no class folders")
    splits = {}
    for split in split_dirs:
        present = [(label, root / split / name) for label, name in enumerate(classes) if (root / split / name).is_dir()]
        listed = list_folders([folder for _, folder in present])
        paths = [path for files in listed for path in files]
        labels = np.repeat([label for label, _ in present], [len(files) for files in listed]).astype(np.int64)
        extra = {d.name for d in iter_class_folders(root / split)} - set(classes)
        if extra:
            raise DataError(f"{root / split} has classes missing from train/: {', '.join(sorted(extra))}")
        splits[split] = FileImages(paths, labels)
    return ImageDataset(name=root.name, classes=classes, splits=splits, layout="imagefolder", root=str(root))


def read_classfolders(root: Path, val_ratio: float = 0.2, seed: int = 0) -> ImageDataset:
    folders = list(iter_class_folders(root))
    listed = [(folder, files) for folder, files in zip(folders, list_folders(folders)) if files]
    classes = [folder.name for folder, _ in listed]  # sorted order is the label; '000_one' keeps its name
    paths = [path for _, files in listed for path in files]
    labels = np.repeat(np.arange(len(listed)), [len(files) for _, files in listed]).astype(np.int64)
    images = FileImages(paths, labels)
    return split_dataset(root.name, classes, images, "classfolders", str(root), val_ratio, seed)


def stratified_split(labels: np.ndarray, val_ratio: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic per-class split: the same files, seed and ratio always give the same split."""
    if not 0.0 < val_ratio < 1.0:
        raise DataError(f"validation ratio {val_ratio} must be between 0 and 1")
    rng = np.random.default_rng(seed)
    labels = strata(labels)
    train, val = [], []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        n_val = max(1, round(len(members) * val_ratio)) if len(members) > 1 else 0
        val.extend(members[:n_val])
        train.extend(members[n_val:])
    return np.sort(np.array(train, dtype=int)), np.sort(np.array(val, dtype=int))


def split_dataset(name: str, classes: list[str], images: FileImages, layout: str, root: str, val_ratio: float,
                  seed: int) -> ImageDataset:
    """A dataset without a split of its own, split by zoo (stratified, seeded); the split is recorded."""
    train_idx, val_idx = stratified_split(images.labels, val_ratio, seed)
    return ImageDataset(
        name=name,
        classes=classes,
        splits={"train": images.subset(train_idx), "val": images.subset(val_idx)},
        layout=layout,
        root=root,
        split_record={
            "method": "stratified", "val_ratio": val_ratio, "seed": seed,
            "val": [str(Path(images.paths[i]).relative_to(root)) if Path(images.paths[i]).is_relative_to(root)
                    else images.paths[i] for i in val_idx],
        },
    )


def drop_bad_files(dataset: ImageDataset) -> None:
    """Decode-check every file once (remembered for unchanged files); unreadable ones leave the dataset
    with one warning each."""
    for split, source in list(dataset.splits.items()):
        if not isinstance(source, FileImages) or not len(source):
            continue
        try:
            source.identity = files_identity(source.paths)
        except OSError:
            source.identity = None  # a file vanished since it was listed: the scan names it
        result = scan_remembered(source.paths, warn=False, identity=source.identity)  # named below, ten of all
        source.sizes, source.digests = result.sizes, result.digests
        if result.bad:
            dataset.skipped.extend(result.bad)
            dataset.splits[split] = source.subset(result.good)
    if dataset.skipped:
        warn_skipped(dataset.skipped)
        log.warning("%d unreadable files skipped in %s", len(dataset.skipped), dataset.name)
