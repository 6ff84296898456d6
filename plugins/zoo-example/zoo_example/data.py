import numpy as np


def shapes(root=None, size: int = 32, per_class: int = 120, seed: int = 0):
    """Circles, squares and triangles drawn into uint8 arrays: a dataset needing no files."""
    from zoo.data import ArrayImages, ImageDataset

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    images, labels = [], []
    for label in range(3):
        for _ in range(per_class):
            cx, cy = rng.integers(size // 4, 3 * size // 4, 2)
            r = rng.integers(size // 8, size // 4)
            if label == 0:
                mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
            elif label == 1:
                mask = (abs(xx - cx) <= r) & (abs(yy - cy) <= r)
            else:
                mask = (yy - cy + r >= 0) & (abs(xx - cx) <= (yy - cy + r) / 2) & (yy - cy <= r)
            img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            img[mask] = rng.integers(150, 255, 3, dtype=np.uint8)
            images.append(img)
            labels.append(label)
    images, labels = np.stack(images), np.array(labels)
    order = rng.permutation(len(labels))
    split = int(0.8 * len(order))
    classes = ["circle", "square", "triangle"]
    return ImageDataset(
        name="example_shapes",
        classes=classes,
        splits={
            "train": ArrayImages(images[order[:split]], labels[order[:split]]),
            "val": ArrayImages(images[order[split:]], labels[order[split:]]),
        },
        layout="in-memory",
    )


def photos(root):
    """A folder-backed dataset: ``root`` is the folder zoo found; any layout zoo detects works inside it."""
    from zoo.data.api import create_dataset

    dataset = create_dataset(str(root))
    dataset.name = "example_photos"
    return dataset
