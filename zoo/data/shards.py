"""Sharded datasets: `zoo data pack` writes WebDataset tar shards, `--data` on them trains streaming.

A packed dataset is a folder: ``<split>-000000.tar``, ... (each sample ``<key>.<ext>`` holding the image
bytes as stored, and ``<key>.cls`` its class index or ``<key>.json`` its labels list) and ``dataset.json``,
the card: classes, task, and per split its shards, their sample counts and the labels in order (so
counts, class weights and checks need no scan of the shards). Shards are written to a temporary name
and renamed when complete, and the card last: a killed pack leaves whole shards, and packing again
continues after the last whole one (``.pack-progress.json`` says which, for which source).

Training reads the shards as a stream (zoo.data.shards.StreamingImages, through the webdataset
library, so any URL fsspec or webdataset can open works for remote shards): shard order shuffled per
epoch, a shuffle buffer, and every sample of an epoch to exactly one process and one loader worker
(processes take the samples an epoch-seeded permutation gives them, workers split the shards): no
sample twice, no up-front scan, a sample that fails to decode skipped with one warning naming it.
Random access (zoo eval, export parity) reads a member at its offset in a local shard.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import random
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from zoo.data.dataset import MULTI_LABEL, FileImages, ImageDataset, item_label, multi_hot
from zoo.data.layouts import SHARDS_CARD as CARD, SHARDS_FORMAT as FORMAT
from zoo.errors import DataError
from zoo.files import atomic_write_json

log = logging.getLogger("zoo.data")

PROGRESS = ".pack-progress.json"
DEFAULT_SHARD_SIZE = "512MB"
SHUFFLE_BUFFER = 2000  # samples a loader worker holds to shuffle the stream


# -- packing ------------------------------------------------------------------------------------------------------
@dataclass
class PackResult:
    output: Path
    splits: dict[str, dict[str, Any]]  # split -> shards, samples
    resumed_shards: int = 0  # shards a killed pack had finished, kept


def pack(data: str, output: str | Path, shard_size: str = DEFAULT_SHARD_SIZE, data_root: str | None = None,
         val_ratio: float = 0.2, seed: int = 0, progress: bool = True) -> PackResult:
    """Write ``data`` (any dataset name or folder zoo reads) as WebDataset shards of about ``shard_size``
    bytes each into ``output``, which must be empty, new, or a pack of the same data."""
    from zoo.data.api import create_dataset
    from zoo.data.decoded_cache import parse_size
    from zoo.progress import progress_bar

    wds = _webdataset()
    limit = parse_size(shard_size)
    out = Path(output)
    dataset = create_dataset(data, data_root=data_root, val_ratio=val_ratio, seed=seed)
    source = {"data": str(data), "fingerprint": dataset.fingerprint(), "shard_bytes": limit}
    done = _resumable(out, source)
    out.mkdir(parents=True, exist_ok=True)
    card: dict[str, Any] = {"format": FORMAT, "name": dataset.name, "classes": dataset.classes, "task": dataset.task,
                            "source": source, "splits": {}}
    resumed = 0
    for split, images in dataset.splits.items():
        shards, counts, start = [], [], 0
        order = write_order(len(images), seed)  # classes mixed in every shard: a stream is shuffled only locally
        with progress_bar(f"packing {split}", len(images), progress) as bar:
            while start < len(images):
                name = f"{split}-{len(shards):06d}.tar"
                if name in done and (out / name).is_file():  # whole from a pack that was stopped: keep it
                    count = done[name]
                    resumed += 1
                else:
                    count = _write_shard(out / name, images, order[start:], limit, split, wds)
                    done[name] = count
                    atomic_write_json(out / PROGRESS, {"source": source, "done": done})
                shards.append(name)
                counts.append(count)
                start += count
                if bar.due() or start == len(images):
                    bar.show(start, f"{len(shards)} shards")
        labels = np.asarray(images.labels)
        card["splits"][split] = {"shards": shards, "samples": counts, "order_seed": seed, "labels": labels.tolist(),
                                 "counts": dataset.counts()[split]}
    atomic_write_json(out / CARD, card)
    (out / PROGRESS).unlink(missing_ok=True)
    return PackResult(out, {s: {"shards": len(v["shards"]), "samples": sum(v["samples"])}
                            for s, v in card["splits"].items()}, resumed)


def _resumable(out: Path, source: dict[str, Any]) -> dict[str, int]:
    """The shards a stopped pack of the same source finished; refuse a folder holding anything else."""
    if not out.exists():
        return {}
    if not out.is_dir():
        raise DataError(f"{out} is a file; name a folder to pack the shards into")
    entries = [p.name for p in out.iterdir()]
    progress = out / PROGRESS
    if progress.is_file():
        recorded = json.loads(progress.read_text())
        if recorded.get("source") == source:
            return {k: int(v) for k, v in recorded["done"].items()}
    if (out / CARD).is_file() and json.loads((out / CARD).read_text()).get("source") == source:
        return {}  # a finished pack of the same data: written again whole, shard by shard
    if entries:
        raise DataError(f"{out} is not empty and holds no pack of this data; pack into an empty or new folder "
                        "(nothing was changed)")
    return {}


def write_order(count: int, seed: int) -> np.ndarray:
    """The order samples are written in: a seeded permutation (samples keep their index as their key)."""
    return np.random.default_rng([seed, 7]).permutation(count)


def _write_shard(path: Path, images, indices: np.ndarray, limit: int, split: str, wds) -> int:
    """Samples of ``indices`` in turn until the shard holds ``limit`` bytes (at least one); written under a
    temporary name and renamed when complete."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    written, count = 0, 0
    try:
        with open(tmp, "wb") as stream:
            writer = wds.TarWriter(stream, encoder=False, mtime=0)  # fixed: the same data makes the same bytes
            for index in indices.tolist():
                ext, data = _stored_bytes(images, index)
                label = np.asarray(images.labels[index])
                sample = {"__key__": f"{split}{index:09d}", ext: data}
                if label.ndim:
                    sample["json"] = json.dumps(np.flatnonzero(label).tolist()).encode()
                else:
                    sample["cls"] = str(int(label)).encode()
                writer.write(sample)
                written += len(data)
                count += 1
                if written >= limit:
                    break
            writer.close()
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return count


def _stored_bytes(images, index: int) -> tuple[str, bytes]:
    """An image's bytes as stored (a file's own JPEG, PNG, ...), or an in-memory image as PNG (lossless)."""
    if isinstance(images, FileImages):
        path = Path(images.paths[index])
        ext = path.suffix.lower().lstrip(".") or "img"
        return ("jpg" if ext == "jpeg" else ext), path.read_bytes()
    buffer = io.BytesIO()
    Image.fromarray(images.images[index]).save(buffer, format="PNG")
    return "png", buffer.getvalue()


# -- reading ------------------------------------------------------------------------------------------------------
def read_shards(path: Path | str, val_ratio: float = 0.2, seed: int = 0) -> ImageDataset:
    """A packed dataset from its card (a folder, or the card's path or URL: shards are named relative to
    it); no shard is opened."""
    if isinstance(path, str) and "://" in path:
        return _remote_shards(path)
    card_file = path / CARD if path.is_dir() else path
    return _from_card(json.loads(card_file.read_text()), str(card_file.parent), card_file.parent.name)


def _remote_shards(url: str) -> ImageDataset:
    import fsspec

    card_url = url if url.endswith(CARD) else url.rstrip("/") + "/" + CARD
    try:
        with fsspec.open(card_url, "rb") as f:
            card = json.loads(f.read())
    except (OSError, ValueError, ImportError) as exc:
        raise DataError(f"cannot read the shards' card {card_url} ({type(exc).__name__}: {exc}); pass the URL of a "
                        "folder `zoo data pack` wrote (or of its dataset.json)") from exc
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise DataError(f"{card_url} is no card `zoo data pack` wrote")
    return _from_card(card, card_url.rsplit("/", 1)[0], card_url.rsplit("/", 2)[-2])


def _from_card(card: dict[str, Any], base: str, default_name: str) -> ImageDataset:
    classes = list(card["classes"])
    splits = {}
    for split, info in card["splits"].items():
        labels = np.asarray(info["labels"], dtype=np.int64)
        if card.get("task") == MULTI_LABEL:
            labels = multi_hot(info["labels"], len(classes))
        splits[split] = ShardImages([f"{base}/{name}" for name in info["shards"]], list(info["samples"]), labels,
                                    int(info.get("order_seed", 0)))
    return ImageDataset(name=card.get("name", default_name), classes=classes, splits=splits, layout="shards", root=base)


@dataclass(repr=False)
class ShardImages:
    """One split in shards: labels from the card, images read from the shards (streamed for training)."""

    shards: list[str]
    samples: list[int]  # per shard
    labels: np.ndarray
    order_seed: int = 0  # the samples were written in write_order(len, order_seed)
    _offsets: dict[str, dict[int, tuple[int, int]]] = field(default_factory=dict)  # shard -> index -> (offset, size)
    _written: np.ndarray | None = None

    def __len__(self) -> int:
        return int(sum(self.samples))

    def __repr__(self) -> str:
        return f"ShardImages({len(self)} samples in {len(self.shards)} shards)"

    def fingerprint(self, root: str = "") -> str:
        import hashlib

        digest = hashlib.sha256(json.dumps([[Path(s).name for s in self.shards], self.samples]).encode())
        digest.update(np.ascontiguousarray(self.labels, dtype=np.int64).tobytes())
        return digest.hexdigest()

    def subset(self, indices) -> ShardImages:
        raise DataError("--limit-train and --limit-val do not apply to packed shards (they stream whole); pack a "
                        "smaller dataset, or train on the folder")

    def load(self, index: int) -> Image.Image:
        """The image at ``index``, read at its offset in a local shard (zoo eval, export parity)."""
        from zoo.data.decode import decode_rgb

        import fsspec

        if self._written is None:  # where each sample was written, once
            self._written = np.argsort(write_order(len(self), self.order_seed))
        written = int(self._written[index])
        shard = int(np.searchsorted(np.cumsum(self.samples), written, side="right"))
        try:
            offset, size = self._members(self.shards[shard])[index]
            with fsspec.open(self.shards[shard], "rb") as f:
                f.seek(offset)
                return decode_rgb(io.BytesIO(f.read(size)))
        except (OSError, ValueError, tarfile.TarError) as exc:
            raise DataError(f"cannot read sample {index} at its place in {self.shards[shard]} ({str(exc)[:120]}); "
                            "reading one image needs a local copy or a server that answers range requests") from exc

    def _members(self, shard: str) -> dict[str, tuple[int, int]]:
        import fsspec

        if shard not in self._offsets:  # tar headers only: the data blocks are skipped (seeks)
            with fsspec.open(shard, "rb") as f, tarfile.open(fileobj=f) as tar:
                self._offsets[shard] = {int(m.name.split(".")[0][-9:]): (m.offset_data, m.size)
                                        for m in tar.getmembers() if not m.name.endswith((".cls", ".json"))}
        return self._offsets[shard]


class StreamingImages(torch.utils.data.IterableDataset):
    """(transformed image, label) for one process's share of an epoch, read from the shards in a stream.

    Every sample goes to the process an epoch-seeded permutation names (``rank`` of ``world``: the same
    number, give or take one, to each), and each shard to one loader worker, so an epoch reads every
    sample once over all processes and workers. Augmentation draws are seeded per sample and epoch, so
    an epoch is the same with any number of workers (and after a resume at an epoch boundary).
    """

    def __init__(self, source: ShardImages, transform, shuffle: bool, seed: int = 0, rank: int = 0, world: int = 1):
        super().__init__()
        self.source, self.transform, self.shuffle = source, transform, shuffle
        self.seed, self.rank, self.world, self.epoch = seed, rank, world, 0

    def per_process(self) -> int:
        """Samples every process gets at least (what an epoch's steps are counted from)."""
        return len(self.source) // self.world if self.world > 1 else len(self.source)

    def _mine(self) -> np.ndarray | None:
        if self.world == 1:
            return None
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.source))
        owner = np.empty(len(order), dtype=np.int64)
        owner[order] = np.arange(len(order)) % self.world
        return owner == self.rank

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for index, image in self.samples(worker, workers):
            with torch.random.fork_rng(devices=[]):  # this sample's own draw, whichever worker runs it
                torch.manual_seed(self.seed * 1_000_003 + self.epoch * len(self.source) + index)
                pixels = self.transform(image)
            yield pixels, item_label(self.source.labels, index)

    def samples(self, worker: int = 0, workers: int = 1) -> Iterator[tuple[int, Image.Image]]:
        """(index, decoded image) of this process's share of the epoch, from loader worker ``worker``'s shards."""
        _webdataset()
        from webdataset import filters, tariterators

        shard_order = list(range(len(self.source.shards)))
        if self.shuffle:
            np.random.default_rng([self.seed, self.epoch, 1]).shuffle(shard_order)
        chosen = [self.source.shards[i] for i in shard_order[worker::workers]]
        mine = self._mine()
        # webdataset's tar reader, sample grouping and shuffle buffer over streams fsspec opens (local or any URL)
        members = tariterators.tar_file_expander(_opened(chosen), handler=self._skip)
        stream = tariterators.group_by_keys(members, handler=self._skip)
        if self.shuffle:
            stream = filters._shuffle(stream, SHUFFLE_BUFFER, initial=SHUFFLE_BUFFER,
                                      rng=random.Random(f"{self.seed}-{self.epoch}-{worker}"))
        for sample in stream:
            index = int(sample["__key__"][-9:])
            if mine is not None and not mine[index]:
                continue
            image = self._decode(sample)
            if image is not None:
                yield index, image

    def _decode(self, sample: dict[str, Any]):
        from zoo.data.decode import BadImageError, decode_rgb

        name, data = next(((k, v) for k, v in sample.items() if not k.startswith("__") and k not in ("cls", "json")),
                          (None, None))
        try:
            if data is None:
                raise BadImageError("no image in the sample")
            return decode_rgb(io.BytesIO(data))
        except BadImageError as exc:
            self._skip(exc, sample.get("__key__"))
            return None

    def _skip(self, exc: Exception, key: str | None = None) -> bool:
        log.warning("warning: skipped a bad sample%s in the shards (%s)", f" {key}" if key else "", exc)
        return True  # webdataset: go on with the next sample


def _webdataset():
    try:
        import webdataset
    except ImportError:
        raise DataError("packed shards need the webdataset library: pip install 'zoo[shards]'") from None
    return webdataset


def _opened(urls: list[str]) -> Iterator[dict[str, Any]]:
    """Each shard opened with fsspec (a local path or any URL it has a driver for), closed when read."""
    import fsspec

    for url in urls:
        with fsspec.open(url, "rb", block_size=0) as stream:  # read front to back: no range requests needed
            yield {"url": url, "stream": stream}


class StreamBatches:
    """Batches of a StreamingImages on the device, ``steps`` of them an epoch (the same on every process)."""

    def __init__(self, dataset: StreamingImages, batch_size: int, workers: int, device: torch.device,
                 channels_last: bool, drop_last: bool):
        self.dataset, self.batch_size, self.workers, self.device = dataset, batch_size, workers, device
        self.format = torch.channels_last if channels_last else torch.contiguous_format
        count = dataset.per_process()
        self.steps = count // batch_size if drop_last and count >= batch_size else math.ceil(count / batch_size)

    def __len__(self) -> int:
        return self.steps

    def set_epoch(self, epoch: int) -> None:
        self.dataset.epoch = epoch

    def __iter__(self):
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=self.batch_size, num_workers=self.workers,
                                             pin_memory=self.device.type == "cuda")
        produced = 0
        while produced < self.steps:
            for images, labels in loader:
                yield (images.to(self.device, non_blocking=True, memory_format=self.format),
                       labels.to(self.device, non_blocking=True))
                produced += 1
                if produced == self.steps:
                    return
            if produced == 0:
                raise DataError("the shards gave no readable sample; run `zoo data check` on the packed folder")
            log.warning("warning: the shards gave this process fewer samples than an epoch needs (bad samples were "
                        "skipped); the epoch is topped up from its start")


def stream_inputs(dataset: ImageDataset, preprocessing, opts, device: torch.device):
    """Inputs for packed shards: streamed through DataLoader workers, augmented per image."""
    from zoo.data.inputs import Inputs
    from zoo.data.loader import default_workers
    from zoo.data.transforms import eval_transform, resolve_preset, train_transform

    rank, world = (torch.distributed.get_rank(), torch.distributed.get_world_size()) if (
        torch.distributed.is_available() and torch.distributed.is_initialized()) else (0, 1)
    augment = resolve_preset(opts.augment, preprocessing.input_size)
    workers = opts.workers if opts.workers is not None else default_workers(device)
    train, evals = dataset.train, dataset.eval
    common = dict(batch_size=opts.batch_size, workers=workers, device=device, channels_last=opts.channels_last)
    train_batches = StreamBatches(StreamingImages(train, train_transform(preprocessing, augment), True, opts.seed, rank,
                                                  world), drop_last=len(train) > opts.batch_size, **common)
    eval_batches = StreamBatches(StreamingImages(evals, eval_transform(preprocessing), False), drop_last=False,
                                 **common)

    def plain_train():
        return StreamBatches(StreamingImages(train, eval_transform(preprocessing), False), drop_last=False, **common)

    log.info("streaming %s from %d + %d shards (shuffle buffer %d, %d loader workers)", dataset.name,
             len(train.shards), len(evals.shards), SHUFFLE_BUFFER, workers)
    return Inputs(train_batches, eval_batches, len(train), len(evals), augment, "stream", plain_train)


def uses_shards(dataset: ImageDataset) -> bool:
    return isinstance(dataset.splits.get("train"), ShardImages)

