"""Run zoo.finetune for a benchmark and read back its per-epoch metrics; a synthetic in-memory dataset."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

import zoo
from zoo.engine.callbacks import Callback
from zoo.registry.core import get_registry
from zoo.specs import DatasetInfo


class PrintEpochs(Callback):
    """Each epoch's figures as it ends: a stage killed by its time limit still shows how far it got."""

    def on_epoch_end(self, result) -> None:
        print(f"epoch {result.epoch}: val top-1 {result.val_top1:.4f}  {result.images_per_s:,.0f} img/s  "
              f"{result.epoch_time_s:.2f} s  elapsed {result.elapsed_s:.1f} s", flush=True)


def engine_epochs(model: str, data: str, **options: Any) -> list[dict[str, Any]]:
    """metrics.jsonl rows of a zoo.finetune run in a throw-away folder."""
    with tempfile.TemporaryDirectory() as tmp:
        zoo.finetune(model=model, data=data, output=str(Path(tmp) / "run"), quiet=True, callbacks=[PrintEpochs()],
                     **options)
        return [json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]


def register_synthetic(name: str, count: int, side: int, num_classes: int, val_count: int) -> str:
    """Random uint8 images already at the cache size (nothing to decode or resize), as a dataset name."""

    num_classes = min(num_classes, count)

    def factory(root=None):
        from zoo.data import ArrayImages, ImageDataset

        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (count, side, side, 3), dtype=np.uint8)
        labels = rng.permutation(np.arange(count) % num_classes)  # every class has training images
        splits = {"train": ArrayImages(images, labels), "val": ArrayImages(images[:val_count], labels[:val_count])}
        return ImageDataset(name, [str(i) for i in range(num_classes)], splits, layout="in-memory")

    get_registry().add_dataset(DatasetInfo(name, factory, embedded=True))
    return name
