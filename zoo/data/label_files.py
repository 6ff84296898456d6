"""Datasets described by label files: list files (``train.txt``), JSON Lines (``.jsonl``) and CSV.

All name images by path relative to the file and give each a label; JSON Lines (``"labels": [...]``)
and CSV (``file,labels`` with space-separated class names) give several, for multi-label data, whose
labels become multi-hot rows (zoo.data.dataset). Splits come from the file
names (``train`` + ``val``/``valid``/``validation``/``test``); a single .jsonl without them is split by
its records' ``split`` field, else 80/20 by zoo. Every label is checked as it is read: a wrong one is
one line naming the file and line, never a class invented from a typo, nor a crash mid-training.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.data.dataset import EVAL_SPLIT_NAMES, FileImages, ImageDataset, multi_hot
from zoo.data.decode import is_candidate
from zoo.data.layouts import split_dataset
from zoo.errors import DataError

log = logging.getLogger("zoo.data")

SPLITS = ("train", *EVAL_SPLIT_NAMES)
MIN_CLASS_CAP = 10_000  # labels are class indices: more classes than this and than images is a broken file


@dataclass
class _Entries:
    """One split's (path, raw label, where) rows as read, duplicates removed."""

    file: Path
    paths: list[str] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)
    where: list[str] = field(default_factory=list)  # "file:line" per row, for messages
    splits: list[str | None] = field(default_factory=list)
    duplicates: int = 0
    _seen: dict[str, int] = field(default_factory=dict)

    def add(self, path: str, label: Any, where: str, split: str | None = None) -> None:
        if path in self._seen:
            first = self._seen[path]
            if self.labels[first] != label:
                raise DataError(f"{where}: {Path(path).name} is listed again with label {label!r} "
                                f"({self.where[first]} says {self.labels[first]!r}); keep one line per image")
            self.duplicates += 1
            return
        self._seen[path] = len(self.paths)
        self.paths.append(path)
        self.labels.append(label)
        self.where.append(where)
        self.splits.append(split)


# -- list files ------------------------------------------------------------------------------------------------
def read_listfiles(root: Path, val_ratio: float = 0.2, seed: int = 0) -> ImageDataset:
    names = _read_class_names(root / "classes.txt")
    entries = {split: _read_list_file(root / f"{split}.txt") for split in SPLITS if (root / f"{split}.txt").is_file()}
    rows = [(label, where) for e in entries.values() for label, where in zip(e.labels, e.where)]
    top = max((label for label, _ in rows), default=-1)
    _check_class_count(len(names) if names is not None else top + 1, len(rows), root / "train.txt")
    classes = names if names is not None else [str(i) for i in range(top + 1)]
    for label, where in rows:
        if label >= len(classes):
            raise DataError(f"{where}: label {label} is out of range: classes.txt names {len(classes)} classes "
                            f"(labels 0-{len(classes) - 1})")
    splits = _without_leaks(entries)
    return ImageDataset(name=root.name, classes=classes, layout="listfile", root=str(root), splits={
        split: FileImages(e.paths, np.array(e.labels, dtype=np.int64)) for split, e in splits.items()})


def _read_class_names(path: Path) -> list[str] | None:
    """One class name per line (names may hold spaces: 'honey bee'); blank lines ignored."""
    if not path.is_file():
        return None
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(f"{path} names {', '.join(map(repr, repeated))} more than once; one line per class")
    return names


def _read_list_file(list_file: Path) -> _Entries:
    entries = _Entries(list_file)
    for line_no, line in enumerate(list_file.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{list_file}:{line_no}"
        parts = line.strip().rsplit(None, 1)
        if len(parts) != 2 or not re.fullmatch(r"-?[0-9]+", parts[1]):  # ASCII digits: int() refuses '²', '①'
            raise DataError(f"{where}: expected 'relative/path.jpg <int label>', got {_clip(line.strip())!r}")
        if "\0" in parts[0]:
            raise DataError(f"{where}: the path holds a NUL byte; no file can be named so, fix the line")
        label = int(parts[1])
        if label < 0:
            raise DataError(f"{where}: label {label} is negative; labels are class indices from 0")
        path = (list_file.parent / parts[0]).resolve()
        if is_candidate(path):
            entries.add(str(path), label, where)
    _warn_duplicates(entries)
    return entries


# -- JSON Lines ----------------------------------------------------------------------------------------------------
def read_jsonl(path: Path, val_ratio: float = 0.2, seed: int = 0) -> ImageDataset:
    if path.is_dir():
        split_files = {s: path / f"{s}.jsonl" for s in SPLITS if (path / f"{s}.jsonl").is_file()}
        if "train" in split_files:
            return _jsonl_split_files(path, split_files)
        found = sorted(path.glob("*.jsonl"))
        if len(found) > 1:
            raise DataError(f"{path} holds {len(found)} .jsonl files ({', '.join(f.name for f in found[:4])}); "
                            "name them train.jsonl and val.jsonl, or pass one file")
        path = found[0]
    entries = _read_jsonl_file(path)
    if not entries.paths:
        raise DataError(f"{path} has no records")
    classes, labels = _label_indices([entries], len(entries.paths))
    images = FileImages(entries.paths, labels)
    if any(entries.splits):
        names = [s or "train" for s in entries.splits]
        splits = {split: images.subset([i for i, s in enumerate(names) if s == split]) for split in sorted(set(names))}
        return ImageDataset(name=path.stem, classes=classes, splits=splits, layout="jsonl", root=str(path.parent))
    return split_dataset(path.stem, classes, images, "jsonl", str(path.parent), val_ratio, seed)


def _jsonl_split_files(root: Path, files: dict[str, Path]) -> ImageDataset:
    entries = {split: _read_jsonl_file(file) for split, file in files.items()}
    classes, labels = _label_indices(list(entries.values()), sum(len(e.paths) for e in entries.values()))
    start = 0
    for e in entries.values():  # the labels, as indices (or multi-hot rows), back into each split
        e.labels, start = list(labels[start:start + len(e.paths)]), start + len(e.paths)
    splits = _without_leaks(entries)
    return ImageDataset(name=root.name, classes=classes, layout="jsonl", root=str(root), splits={
        split: FileImages(e.paths, np.array(e.labels, dtype=labels.dtype).reshape(len(e.paths), *labels.shape[1:]))
        for split, e in splits.items()})


def _read_jsonl_file(path: Path) -> _Entries:
    entries = _Entries(path)
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not valid JSON ({exc.msg})") from exc
        except RecursionError:
            raise DataError(f"{where}: nested too deeply to be an image line; fix the line") from None
        if not isinstance(obj, dict):
            raise DataError(f"{where}: expected an object like {{\"path\": \"img.jpg\", \"label\": \"cat\"}}, "
                            f"got {type(obj).__name__}")
        image = obj.get("path") or obj.get("image") or obj.get("file")
        if not isinstance(image, str) or ("label" not in obj and "labels" not in obj):
            raise DataError(f"{where}: each line needs a 'path' (a string) and a 'label' (or a 'labels' list)")
        if "\0" in image:
            raise DataError(f"{where}: the path holds a NUL byte; no file can be named so, fix the line")
        split = obj.get("split")
        if "labels" in obj:
            if not isinstance(obj["labels"], list):
                raise DataError(f"{where}: 'labels' must be a list of class names (or indices), got "
                                f"{json.dumps(obj['labels'])[:80]}")
            label = tuple(sorted(set(_checked_label(item, where) for item in obj["labels"]), key=str))
        else:
            label = _checked_label(obj["label"], where)
        if split is not None and not isinstance(split, str):
            raise DataError(f"{where}: split {json.dumps(split)} must be a name such as \"train\" or \"val\"")
        entries.add(str((path.parent / image).resolve()), label, where, split)
    _warn_duplicates(entries)
    return entries


def _checked_label(label: Any, where: str) -> int | str:
    if isinstance(label, bool) or not isinstance(label, (int, str)) or (isinstance(label, str) and not label.strip()):
        raise DataError(f"{where}: label {json.dumps(label)} is neither a class name nor a class index")
    if isinstance(label, int) and label < 0:
        raise DataError(f"{where}: label {label} is negative; labels are class indices from 0")
    return label


def _label_indices(all_entries: list[_Entries], n_images: int) -> tuple[list[str], np.ndarray]:
    """Class names and label indices: all names (sorted) or all indices (0..max), never a mix. Where a
    line gives a 'labels' list the labels are multi-hot rows (a single 'label' is then a list of one)."""
    if any(isinstance(label, tuple) for e in all_entries for label in e.labels):
        return _multi_hot_labels(all_entries, n_images)
    rows = [(label, where) for e in all_entries for label, where in zip(e.labels, e.where)]
    kind = type(rows[0][0]) if rows else str
    for label, where in rows:
        if type(label) is not kind:
            raise DataError(f"{where}: label {json.dumps(label)} is a {type(label).__name__} but {rows[0][1]} "
                            f"gives a {kind.__name__}; use class names everywhere or indices everywhere")
    if kind is int:
        count = max(label for label, _ in rows) + 1
        _check_class_count(count, n_images, all_entries[0].file)  # before building a name per class
        return [str(i) for i in range(count)], np.array([label for label, _ in rows], dtype=np.int64)
    classes = sorted({label for label, _ in rows})
    index = {name: i for i, name in enumerate(classes)}
    return classes, np.array([index[label] for label, _ in rows], dtype=np.int64)


def _multi_hot_labels(all_entries: list[_Entries], n_images: int) -> tuple[list[str], np.ndarray]:
    rows = [(label if isinstance(label, tuple) else (label,), where)
            for e in all_entries for label, where in zip(e.labels, e.where)]
    kinds = {type(item) for labels, _ in rows for item in labels}
    if len(kinds) > 1:
        where = next(w for labels, w in rows if any(type(item) is int for item in labels))
        raise DataError(f"{where}: labels mix class indices and class names; use names everywhere or indices "
                        "everywhere")
    if kinds == {int}:
        count = max(item for labels, _ in rows for item in labels) + 1
        _check_class_count(count, n_images, all_entries[0].file)
        return [str(i) for i in range(count)], multi_hot([labels for labels, _ in rows], count)
    classes = sorted({item for labels, _ in rows for item in labels})
    index = {name: i for i, name in enumerate(classes)}
    return classes, multi_hot([[index[item] for item in labels] for labels, _ in rows], len(classes))


# -- CSV (multi-label) ------------------------------------------------------------------------------------------
FILE_COLUMNS, LABEL_COLUMNS = ("file", "image", "path", "filename"), ("labels", "label", "tags")


def read_csv(root: Path, val_ratio: float = 0.2, seed: int = 0) -> ImageDataset:
    """train.csv + val.csv (or valid/test.csv), a header naming the file and labels columns ('file,labels'),
    labels space-separated class names; classes.txt, when present, fixes the classes and their order."""
    entries = {split: _read_csv_file(root / f"{split}.csv") for split in SPLITS if (root / f"{split}.csv").is_file()}
    names = _read_class_names(root / "classes.txt")
    classes = names if names is not None else sorted({c for e in entries.values() for row in e.labels for c in row})
    index = {name: i for i, name in enumerate(classes)}
    for e in entries.values():
        for row, where in zip(e.labels, e.where):
            unknown = [c for c in row if c not in index]
            if unknown:
                raise DataError(f"{where}: class {unknown[0]!r} is not in {root / 'classes.txt'}; fix the name or "
                                "add the class there")
    splits = _without_leaks(entries)
    return ImageDataset(name=root.name, classes=classes, layout="csv", root=str(root), splits={
        split: FileImages(e.paths, multi_hot([[index[c] for c in row] for row in e.labels], len(classes)))
        for split, e in splits.items()})


def _read_csv_file(path: Path) -> _Entries:
    entries = _Entries(path)
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = [cell.strip().lower() for cell in next(reader, [])]
        file_col = next((header.index(c) for c in FILE_COLUMNS if c in header), None)
        label_col = next((header.index(c) for c in LABEL_COLUMNS if c in header), None)
        if file_col is None or label_col is None:
            raise DataError(f"{path}:1: expected a header naming a file column and a labels column, such as "
                            f"'file,labels'; got {','.join(header)[:120]!r}")
        for line_no, cells in enumerate(reader, 2):
            if not any(cell.strip() for cell in cells):
                continue
            where = f"{path}:{line_no}"
            if len(cells) <= max(file_col, label_col):
                raise DataError(f"{where}: expected {len(header)} columns ({','.join(header)}), got {len(cells)}")
            name, labels = cells[file_col].strip(), tuple(sorted(set(cells[label_col].split())))
            if not name or "\0" in name:
                raise DataError(f"{where}: the file name is empty or holds a NUL byte; fix the line")
            file = (path.parent / name).resolve()
            if is_candidate(file):
                entries.add(str(file), labels, where)
    _warn_duplicates(entries)
    return entries


# -- checks shared by both ----------------------------------------------------------------------------------------
def _check_class_count(n_classes: int, n_images: int, where: Path) -> None:
    if n_classes > max(MIN_CLASS_CAP, n_images):
        raise DataError(f"{where}: labels make {n_classes:,} classes for {n_images:,} images; labels are class "
                        "indices 0..N-1 (or class names), check the largest label")


def _warn_duplicates(entries: _Entries) -> None:
    if entries.duplicates:
        log.warning("%s lists %d images more than once; each is used once", entries.file, entries.duplicates)


def _without_leaks(entries: dict[str, _Entries]) -> dict[str, _Entries]:
    """Evaluation splits without the images the train split already has (they would inflate accuracy)."""
    train = set(entries["train"].paths) if "train" in entries else set()
    for split, e in entries.items():
        if split == "train" or not train:
            continue
        keep = [i for i, p in enumerate(e.paths) if p not in train]
        if len(keep) < len(e.paths):
            log.warning("%d images of %s are also in the train split: left out of %s",
                        len(e.paths) - len(keep), e.file.name, split)
            e.paths, e.labels, e.where = [e.paths[i] for i in keep], [e.labels[i] for i in keep], [e.where[i] for i in keep]
    return entries


def _clip(text: str, limit: int = 200) -> str:
    """A line of a user's file, short enough to quote in one error line."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"
