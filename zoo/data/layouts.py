"""The five on-disk layouts users bring, detected from a path or chosen by name.

1. imagefolder  root/train/<class>/*.jpg, root/val|test/<class>/*.jpg
2. classfolders root/<class>/*.jpg with no split (zoo splits it, stratified and seeded)
3. listfile     train.txt / test.txt (or val.txt) with 'relative/path.jpg <label>', optional classes.txt
4. jsonl        one {"path": ..., "label": name|index, "split": optional} object per line
5. cifar        torchvision's cifar-10-batches-py/ or cifar-100-python/ pickles, or their .tar.gz
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np

from zoo.data.dataset import EVAL_SPLIT_NAMES, ArrayImages, FileImages, ImageDataset
from zoo.data.decode import is_candidate, iter_class_folders, list_image_files, scan_images
from zoo.errors import DataError

LAYOUTS = ("imagefolder", "classfolders", "listfile", "jsonl", "cifar")
CIFAR_FOLDERS = ("cifar-10-batches-py", "cifar-100-python")
LIST_SPLITS = ("train", *EVAL_SPLIT_NAMES)


def detect_layout(path: Path) -> str:
    """Name the layout of a file or folder, or raise a DataError saying what was expected."""
    if path.is_file():
        if path.suffix == ".jsonl":
            return "jsonl"
        if path.name.endswith((".tar.gz", ".tgz")) and "cifar" in path.name:
            return "cifar"
        raise DataError(f"{path} is a file zoo cannot read; pass a folder, a .jsonl file or a CIFAR .tar.gz")
    if not path.is_dir():
        raise DataError(f"data path {path} does not exist; pass a dataset name (`zoo list --datasets`) or a folder")
    names = {p.name for p in path.iterdir()}
    if names & set(CIFAR_FOLDERS) or {"data_batch_1", "test_batch"} <= names or {"train", "meta", "test"} <= names:
        return "cifar"
    if any(f"{s}.txt" in names for s in LIST_SPLITS) and "train.txt" in names:
        return "listfile"
    if any(n.endswith(".jsonl") for n in names):
        return "jsonl"
    if (path / "train").is_dir() and any((path / s).is_dir() for s in EVAL_SPLIT_NAMES):
        return "imagefolder"
    if any(d for d in iter_class_folders(path) if list_image_files(d)):
        return "classfolders"
    raise DataError(
        f"no dataset layout found in {path}: expected train/ and val/ class folders, class folders, "
        "train.txt list files, a .jsonl file or CIFAR pickles"
    )


def read_layout(path: Path, layout: str | None = None, val_ratio: float = 0.2, seed: int = 0) -> ImageDataset:
    """Read a dataset from disk; bad image files are skipped with one warning each."""
    path = Path(path).expanduser()
    layout = layout or detect_layout(path)
    readers: dict[str, Callable[..., ImageDataset]] = {
        "imagefolder": lambda: read_imagefolder(path),
        "classfolders": lambda: read_classfolders(path, val_ratio, seed),
        "listfile": lambda: read_listfiles(path),
        "jsonl": lambda: read_jsonl(path, val_ratio, seed),
        "cifar": lambda: read_cifar(path),
    }
    if layout not in readers:
        raise DataError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    dataset = readers[layout]()
    drop_bad_files(dataset)
    return dataset


def read_imagefolder(root: Path) -> ImageDataset:
    split_dirs = [d for d in ("train", *EVAL_SPLIT_NAMES) if (root / d).is_dir()]
    classes = [d.name for d in iter_class_folders(root / "train")]
    if not classes:
        raise DataError(f"{root / 'train'} has no class folders")
    splits = {}
    for split in split_dirs:
        paths, labels = [], []
        for label, name in enumerate(classes):
            folder = root / split / name
            if folder.is_dir():
                files = list_image_files(folder)
                paths += [str(f) for f in files]
                labels += [label] * len(files)
        extra = {d.name for d in iter_class_folders(root / split)} - set(classes)
        if extra:
            raise DataError(f"{root / split} has classes missing from train/: {', '.join(sorted(extra))}")
        splits[split] = FileImages(paths, np.array(labels, dtype=np.int64))
    return ImageDataset(name=root.name, classes=classes, splits=splits, layout="imagefolder", root=str(root))


def read_classfolders(root: Path, val_ratio: float = 0.2, seed: int = 0) -> ImageDataset:
    folders = [d for d in iter_class_folders(root) if list_image_files(d)]
    classes = [d.name for d in folders]  # sorted order is the label; '000_one' keeps its name
    paths, labels = [], []
    for label, folder in enumerate(folders):
        files = list_image_files(folder)
        paths += [str(f) for f in files]
        labels += [label] * len(files)
    images = FileImages(paths, np.array(labels, dtype=np.int64))
    return _split_dataset(root.name, classes, images, "classfolders", str(root), val_ratio, seed)


def stratified_split(labels: np.ndarray, val_ratio: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic per-class split: the same files, seed and ratio always give the same split."""
    if not 0.0 < val_ratio < 1.0:
        raise DataError(f"validation ratio {val_ratio} must be between 0 and 1")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        n_val = max(1, round(len(members) * val_ratio)) if len(members) > 1 else 0
        val.extend(members[:n_val])
        train.extend(members[n_val:])
    return np.sort(np.array(train, dtype=int)), np.sort(np.array(val, dtype=int))


def _split_dataset(name, classes, images: FileImages, layout, root, val_ratio, seed) -> ImageDataset:
    train_idx, val_idx = stratified_split(images.labels, val_ratio, seed)
    return ImageDataset(
        name=name,
        classes=classes,
        splits={"train": images.subset(train_idx), "val": images.subset(val_idx)},
        layout=layout,
        root=root,
        split_file={
            "method": "stratified", "val_ratio": val_ratio, "seed": seed,
            "val": [str(Path(images.paths[i]).relative_to(root)) if Path(images.paths[i]).is_relative_to(root)
                    else images.paths[i] for i in val_idx],
        },
    )


def read_listfiles(root: Path) -> ImageDataset:
    classes_file = root / "classes.txt"
    names = classes_file.read_text().split() if classes_file.is_file() else None
    splits = {}
    for split in LIST_SPLITS:
        list_file = root / f"{split}.txt"
        if not list_file.is_file():
            continue
        paths, labels = [], []
        for line_no, line in enumerate(list_file.read_text().splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            rel, _, label = line.rstrip().rpartition(" ")
            if not rel or not label.lstrip("-").isdigit():
                raise DataError(f"{list_file}:{line_no}: expected 'relative/path.jpg <int label>', got {line!r}")
            path = (list_file.parent / rel.strip()).resolve()
            if is_candidate(path):
                paths.append(str(path))
                labels.append(int(label))
        splits[split] = FileImages(paths, np.array(labels, dtype=np.int64))
    n_classes = 1 + max((int(s.labels.max()) for s in splits.values() if len(s)), default=-1)
    classes = names if names is not None else [str(i) for i in range(n_classes)]
    if n_classes > len(classes):
        raise DataError(f"{root}: labels go up to {n_classes - 1} but classes.txt names {len(classes)} classes")
    return ImageDataset(name=root.name, classes=classes, splits=splits, layout="listfile", root=str(root))


def read_jsonl(path: Path, val_ratio: float = 0.2, seed: int = 0) -> ImageDataset:
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
        path = files[0]
    records = []
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{line_no}: not valid JSON ({exc.msg})") from exc
        image = obj.get("path") or obj.get("image") or obj.get("file")
        if image is None or "label" not in obj:
            raise DataError(f"{path}:{line_no}: each line needs a 'path' and a 'label'")
        records.append((str((path.parent / image).resolve()), obj["label"], obj.get("split")))
    if not records:
        raise DataError(f"{path} has no records")
    raw_labels = [r[1] for r in records]
    if all(isinstance(lb, int) for lb in raw_labels):
        classes = [str(i) for i in range(max(raw_labels) + 1)]
        to_index = {i: i for i in range(len(classes))}
    else:
        classes = sorted({str(lb) for lb in raw_labels})
        to_index = {name: i for i, name in enumerate(classes)}
        to_index.update({i: i for i in range(len(classes))})
    labels = np.array([to_index[lb if isinstance(lb, int) else str(lb)] for lb in raw_labels], dtype=np.int64)
    paths = [r[0] for r in records]
    if any(r[2] for r in records):
        splits = {}
        for split in sorted({r[2] or "train" for r in records}):
            idx = [i for i, r in enumerate(records) if (r[2] or "train") == split]
            splits[split] = FileImages([paths[i] for i in idx], labels[idx])
        return ImageDataset(name=path.stem, classes=classes, splits=splits, layout="jsonl", root=str(path.parent))
    return _split_dataset(path.stem, classes, FileImages(paths, labels), "jsonl", str(path.parent), val_ratio, seed)


def read_cifar(path: Path) -> ImageDataset:
    if path.is_file():  # the official .tar.gz: extract once into zoo's cache
        from zoo.hub import cache_dir, extract_archive

        target = cache_dir("extracted", path.name.split(".")[0])
        if not target.exists():
            extract_archive(path, target)
        path = target
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
    classes = list(_unpickle(meta)[names_key])
    splits = {}
    for split, files in (("train", train_files), ("test", test_files)):
        batches = [_unpickle(f) for f in files if f.is_file()]
        if not batches:
            continue
        data = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batches])
        labels = np.concatenate([np.asarray(b[label_key], dtype=np.int64) for b in batches])
        images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()
        splits[split] = ArrayImages(images, labels)
    return ImageDataset(name=path.parent.name if path.name in CIFAR_FOLDERS else path.name,
                        classes=classes, splits=splits, layout="cifar", root=str(path))


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """CIFAR's batches are Python 2 pickles of dicts, lists and numpy arrays: allow nothing else,
    so a doctored file cannot run code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
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
            return _ArraysOnlyUnpickler(f, encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError) as exc:
            raise DataError(f"{path} is not a readable CIFAR batch ({exc})") from exc


def drop_bad_files(dataset: ImageDataset) -> None:
    """Decode-check every file once; unreadable ones leave the dataset with one warning each."""
    for split, source in list(dataset.splits.items()):
        if not isinstance(source, FileImages) or not len(source):
            continue
        result = scan_images(source.paths)
        if result.bad:
            dataset.skipped.extend(result.bad)
            dataset.splits[split] = source.subset(result.good)
    if dataset.skipped:
        import logging

        logging.getLogger("zoo.data").warning(
            "%d unreadable files skipped in %s (listed above)", len(dataset.skipped), dataset.name
        )
