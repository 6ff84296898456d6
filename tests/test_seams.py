"""The library's seams: fit() on plain objects, name tables, typed metadata, and plugins extending
layouts and namespaces through the same API zoo's own use."""

import json

import numpy as np
import pytest
import torch
import torchvision

import zoo
from zoo.errors import DuplicateNameError, UnknownNameError, ZooError
from zoo.names import NameTable
from zoo.runs import CheckpointMeta
from zoo.specs import Preprocessing
from tests.plugin_factory import make_plugin


def _shapes_arrays():
    dataset = zoo.create_dataset("example_shapes")
    return dataset.classes, (dataset.train.images, dataset.train.labels), (dataset.eval.images, dataset.eval.labels)


def test_fit_trains_a_plain_torchvision_model_on_an_in_memory_dataset(tmp_path):
    classes, train, val = _shapes_arrays()
    dataset = zoo.ImageDataset.from_arrays("shapes-in-memory", classes, train=train, val=val)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=3)  # not registered anywhere
    pre = Preprocessing(input_size=32, resize_size=32, mean=(0.5,) * 3, std=(0.25,) * 3)
    result = zoo.fit(model, dataset, zoo.TrainConfig(epochs=8, batch_size=32, lr=3e-3, quiet=True, workers=0,
                                                     output=str(tmp_path / "run")), pre)
    assert result.best_top1 >= 0.6  # chance is 0.33; the CPU box: 0.83 (bf16 autocast), 0.92 (fp32)
    meta = CheckpointMeta.load(tmp_path / "run" / "best.json")
    assert meta.model == "ResNet" and meta.classes == classes and meta.preprocessing == pre
    # not registered: export rebuilds nothing by name, the caller hands the module over
    with pytest.raises(ZooError, match="pass the module"):
        zoo.export(tmp_path / "run", output=tmp_path / "export")
    images = tmp_path / "images"
    images.mkdir()
    for i in range(8):
        dataset.eval.load(i).save(images / f"{i}.png")
    exported = zoo.export(tmp_path / "run", output=tmp_path / "export", images=images,
                          model=torchvision.models.resnet18(num_classes=3))
    assert exported.passed and exported.parity["onnx"]["images"] == 8


def test_from_arrays_checks_what_it_is_given():
    images = np.zeros((4, 8, 8, 3), dtype=np.uint8)
    with pytest.raises(ZooError, match="4 images but 3 labels"):
        zoo.ImageDataset.from_arrays("x", ["a", "b"], train=(images, [0, 1, 0]), val=(images, [0, 1, 0, 1]))
    with pytest.raises(ZooError, match="must be uint8"):
        zoo.ImageDataset.from_arrays("x", ["a", "b"], train=(images.astype(float), [0, 1, 0, 1]), val=(images, [0, 1, 0, 1]))
    dataset = zoo.ImageDataset.from_arrays("x", ["a", "b"], train=(images, [0, 1, 0, 1]), val=(images, [0, 1, 0, 1]))
    assert repr(dataset) == "ImageDataset('x', in-memory, 2 classes, train 4, val 4)"


def test_name_table_raises_on_duplicates_and_suggests_close_names():
    table = NameTable("widget", "see the docs")
    table.add("resnet18", 1, owner="first")
    table.add("resnet50", 2, owner="second")
    with pytest.raises(DuplicateNameError, match="widget 'resnet18' from third is already registered by first"):
        table.add("resnet18", 3, owner="third")
    with pytest.raises(UnknownNameError, match=r"unknown widget 'resnet19' \(did you mean resnet18.*\); see the docs"):
        table.get("resnet19")
    assert table.list("RESNET5*") == ["resnet50"] and table.list() == ["resnet18", "resnet50"]


def test_preprocessing_round_trips_and_refuses_absurd_values():
    pre = zoo.model_info("resnet50").preprocessing()
    again = Preprocessing.from_dict(json.loads(json.dumps(pre.to_dict())))
    assert again == pre and again.resize_size == 232 and again.eval_transform is not None
    for bad in ({"input_size": 30000}, {"resize_size": 10}, {"std": [0, 1, 1]}, {"interpolation": "lanczos9"},
                {"mean": "abc"}):
        with pytest.raises(ZooError, match="best.json"):
            Preprocessing.from_dict({**pre.to_dict(), **bad}, source="best.json")


def test_checkpoint_meta_is_validated_on_load(tmp_path):
    pre = Preprocessing.for_size(32)
    good = CheckpointMeta(model="resnet18", num_classes=2, classes=["a", "b"], preprocessing=pre)
    assert CheckpointMeta.from_dict(json.loads(good.to_json())) == good
    path = tmp_path / "best.json"
    for text, message in (("{not json", "not valid JSON"), ("[1, 2]", "not an object"),
                          (json.dumps({**good.to_dict(), "num_classes": 3}), "names 2 classes but says num_classes 3"),
                          (json.dumps({**good.to_dict(), "classes": [1, 2]}), "list of class names")):
        path.write_text(text)
        with pytest.raises(ZooError, match=message) as excinfo:
            CheckpointMeta.load(path)
        assert str(path) in str(excinfo.value) and "\n" not in str(excinfo.value)


LAYOUT_PLUGIN = '''
from pathlib import Path

def register(ctx):
    ctx.add_layout("csvlist", detect=MODULE_NAME + ":detect", read=MODULE_NAME + ":read",
                   description="labels.csv with path,label rows")
    ctx.add_namespace("toy", MODULE_NAME + ":ToyNamespace", description="two toy models")

def detect(path):
    return (Path(path) / "labels.csv").is_file()

def read(path, *, val_ratio, seed):
    import numpy as np
    from zoo.data import FileImages
    from zoo.data.layouts import split_dataset
    rows = [line.split(",") for line in (Path(path) / "labels.csv").read_text().split()]
    classes = sorted({label for _, label in rows})
    images = FileImages([str(Path(path) / p) for p, _ in rows], np.array([classes.index(l) for _, l in rows]))
    return split_dataset(Path(path).name, classes, images, "csvlist", str(path), val_ratio, seed)

class ToyNamespace:
    def names(self):
        return ["tiny_a", "tiny_b"]

    def info(self, name):
        from zoo.specs import ModelInfo
        return ModelInfo(name="toy:" + name, factory="zoo_example.models:tinynet", source="toy", input_size=32)
'''


def test_a_plugin_adds_a_layout_and_a_model_namespace(tmp_path, fresh_registry, monkeypatch, class_folders):
    site = tmp_path / "site"
    monkeypatch.syspath_prepend(str(site))
    make_plugin(site, "zoo-csv", LAYOUT_PLUGIN.replace("MODULE_NAME", "'zoo_csv_mod'"),
                {"zoo.datasets": "csv = MODULE:register"})
    rows = [f"{p.relative_to(class_folders)},{p.parent.name}" for p in sorted(class_folders.rglob("*.png"))]
    (class_folders / "labels.csv").write_text("\n".join(rows))
    dataset = zoo.create_dataset(str(class_folders))
    assert dataset.layout == "csvlist" and dataset.counts()["val"] == [2, 2, 2]  # tried before zoo's classfolders
    assert zoo.list_models("toy:*") == ["toy:tiny_a", "toy:tiny_b"]
    assert zoo.create_model("toy:tiny_a", num_classes=4)(torch.zeros(1, 3, 32, 32)).shape == (1, 4)


def test_plugin_api_takes_metadata_by_keyword_only():
    from zoo.plugin import PluginContext

    ctx = PluginContext("zoo-test")
    with pytest.raises(TypeError):
        ctx.add_model("net", "pkg.mod:factory", {"variant": 1})  # factory_kwargs must be named
    ctx.add_model("net", "pkg.mod:factory", input_size=32, classifier="head")
    (table, name, info), = ctx.staged
    assert (table, name, info.input_size, info.classifier, info.distribution) == ("models", "net", 32, "head", "zoo-test")
