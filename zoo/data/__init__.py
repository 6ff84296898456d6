"""Datasets: layouts found on disk, named dataset plugins, robust decoding, transforms, loaders."""

from zoo.data.dataset import ArrayImages, FileImages, ImageDataset

__all__ = ["ArrayImages", "FileImages", "ImageDataset"]
