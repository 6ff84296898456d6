"""The training loop our users' seed scripts have, written the way they wrote it, as the baseline.

Per epoch: every image opened with PIL and transformed (torchvision.transforms.v2) in DataLoader
workers, fp32, NCHW, ``running_loss += loss.item()`` every step, then a validation pass. It takes
zoo's dataset objects only for their file lists and labels, so both loops see the same images.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from PIL import Image
from torch import nn
from torchvision.transforms import v2

import zoo

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class SeedImages(torch.utils.data.Dataset):
    """(path, label) pairs opened with PIL every time, as torchvision's ImageFolder does."""

    def __init__(self, source, transform):
        self.source, self.transform = source, transform

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int):
        if hasattr(self.source, "paths"):
            image = Image.open(self.source.paths[index]).convert("RGB")
        else:
            image = self.source.load(index)
        return self.transform(image), int(self.source.labels[index])


def plain(size: int) -> v2.Compose:
    """Resize + centre crop, the seeds' evaluation (and no-augmentation training) transform."""
    return v2.Compose([v2.Resize(round(size / 0.875)), v2.CenterCrop(size), v2.ToImage(),
                       v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])


def as_is(size: int) -> v2.Compose:
    """No resize (CIFAR: the images already are the model's size)."""
    return v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])


def random_resized_crop(size: int) -> v2.Compose:
    return v2.Compose([v2.RandomResizedCrop(size), v2.RandomHorizontalFlip(), v2.ToImage(),
                       v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])


def cifar_crop(size: int) -> v2.Compose:
    """The CIFAR seeds' augmentation: 4-pixel padded random crop and flip."""
    return v2.Compose([v2.RandomCrop(size, padding=4), v2.RandomHorizontalFlip(), v2.ToImage(),
                       v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])


@dataclass
class SeedRecipe:
    model: str
    size: int
    epochs: int
    batch_size: int
    make_optimizer: Callable[[nn.Module], torch.optim.Optimizer]
    make_scheduler: Callable[[torch.optim.Optimizer, int], object] | None = None  # (optimizer, steps/epoch)
    train_transform: Callable[[int], v2.Compose] = plain
    step_scheduler_per_batch: bool = False
    workers: int = 1
    eval_transform: Callable[[int], v2.Compose] = plain


def run_seed(recipe: SeedRecipe, dataset, seed: int = 0) -> list[dict]:
    """Per-epoch rows: epoch, train_s, images_per_s, val_top1, elapsed_s."""
    torch.manual_seed(seed)
    model = zoo.create_model(recipe.model, num_classes=dataset.num_classes).train()
    optimizer = recipe.make_optimizer(model)
    train = torch.utils.data.DataLoader(SeedImages(dataset.train, recipe.train_transform(recipe.size)),
                                        batch_size=recipe.batch_size, shuffle=True, num_workers=recipe.workers,
                                        persistent_workers=recipe.workers > 0)
    val = torch.utils.data.DataLoader(SeedImages(dataset.eval, recipe.eval_transform(recipe.size)), batch_size=64,
                                      num_workers=recipe.workers, persistent_workers=recipe.workers > 0)
    scheduler = recipe.make_scheduler(optimizer, len(train)) if recipe.make_scheduler else None
    criterion = nn.CrossEntropyLoss()
    rows, started = [], time.perf_counter()
    for epoch in range(recipe.epochs):
        model.train()
        t0, seen, running_loss = time.perf_counter(), 0, 0.0
        for images, labels in train:
            optimizer.zero_grad()
            loss = criterion(model(images), labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item() * images.size(0)  # a host sync per step, as the seeds have it
            seen += images.size(0)
            if scheduler is not None and recipe.step_scheduler_per_batch:
                scheduler.step()
        if scheduler is not None and not recipe.step_scheduler_per_batch:
            scheduler.step()
        train_s = time.perf_counter() - t0
        rows.append({"epoch": epoch + 1, "train_s": train_s, "images_per_s": seen / train_s,
                     "train_loss": running_loss / seen, "val_top1": evaluate(model, val),
                     "elapsed_s": time.perf_counter() - started})
    return rows


@torch.no_grad()
def evaluate(model: nn.Module, loader) -> float:
    model.eval()
    correct = total = 0
    for images, labels in loader:
        correct += (model(images).argmax(1) == labels).sum().item()
        total += labels.numel()
    return correct / max(1, total)
