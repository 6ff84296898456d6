"""zoo's named datasets, registered through the `zoo.datasets` entry point like any plugin's."""

from __future__ import annotations

from zoo.plugin import PluginContext

FOLDER_FACTORY = "zoo.data.named:folder_dataset"
# zoo's dataset layouts (see zoo/data/layouts.py), tried in this order: name, reader, description.
# Detectors are zoo.data.layouts:is_<name>. Strings, so registering them imports nothing.
LAYOUTS = (
    ("shards", "zoo.data.shards:read_shards", "WebDataset shards with a dataset.json card (zoo data pack)"),
    ("cifar", "zoo.data.cifar:read_cifar", "CIFAR pickles (data_batch_N/test_batch) or their .tar.gz"),
    ("listfile", "zoo.data.label_files:read_listfiles", "train.txt list files ('path label' per line)"),
    ("jsonl", "zoo.data.label_files:read_jsonl", "a .jsonl file (or train.jsonl + valid.jsonl)"),
    ("csv", "zoo.data.label_files:read_csv", "train.csv + val.csv with 'file,labels' (multi-label)"),
    ("imagefolder", "zoo.data.layouts:read_imagefolder", "train/ and val/ class folders"),
    ("classfolders", "zoo.data.layouts:read_classfolders", "class folders without a split"),
)


def register(ctx: PluginContext) -> None:
    for name, reader, description in LAYOUTS:
        ctx.add_layout(name, detect=f"zoo.data.layouts:is_{name}", read=reader, description=description)
    ctx.add_dataset(
        "hymenoptera", FOLDER_FACTORY,
        factory_kwargs={"layout": "imagefolder"}, folder_names=("hymenoptera", "hymenoptera_data"),
        description="ants vs bees, full-size photos (PyTorch transfer-learning tutorial)",
        layout="imagefolder", num_classes=2,
        url="https://download.pytorch.org/tutorial/hymenoptera_data.zip", download_size="45 MB",
    )
    ctx.add_dataset(
        "food20", FOLDER_FACTORY,
        factory_kwargs={"layout": "listfile"},
        description="first 20 Food-101 classes at 64 px, list-file layout",
        layout="listfile", num_classes=20,
        # No archive of this subset is published: it is made from Food-101 (about 5 GB).
        url="http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz", download_size="5 GB (Food-101, make food20 from it)",
    )
    ctx.add_dataset(
        "cifar10", FOLDER_FACTORY,
        factory_kwargs={"layout": "cifar"}, folder_names=("cifar10", "cifar-10-batches-py"),
        description="CIFAR-10 in torchvision's python-pickle format",
        layout="cifar", num_classes=10,
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        checksum="md5:c58f30108f718f92721af3b95e74349a", download_size="163 MB",
    )
    ctx.add_dataset(
        "flowers", FOLDER_FACTORY,
        factory_kwargs={"layout": "classfolders"}, folder_names=("flowers", "flower_photos"),
        description="TensorFlow flower_photos: 5 classes, no split (zoo splits 80/20)",
        layout="classfolders", num_classes=5,
        url="https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz",
        download_size="218 MB",
    )
    ctx.add_dataset(
        "digits", "zoo.data.named:digits",
        description="scikit-learn's bundled 8x8 handwritten digits (1,797 images): needs no download",
        layout="in-memory", num_classes=10, embedded=True,
    )
