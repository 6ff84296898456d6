"""Layouts, named datasets, robust decoding and `zoo data check` on real and synthetic data."""

import hashlib
import json
import shutil
import tarfile

import numpy as np
import pytest
from typer.testing import CliRunner

import zoo
from zoo.cli import app
from zoo.data.decode import BadImageError, decode_rgb, is_candidate
from zoo.data.layouts import detect_layout, read_layout
from zoo.errors import DataError
from zoo.specs import DatasetInfo
from tests.conftest import COLORS, shared_data, write_image


def test_class_folders_split_is_stratified_deterministic_and_saved(class_folders):
    a = read_layout(class_folders)
    b = read_layout(class_folders)
    assert a.layout == "classfolders" and a.classes == ["000_red", "001_green", "002_blue"]
    assert a.counts() == {"train": [8, 8, 8], "val": [2, 2, 2]}
    assert a.splits["val"].paths == b.splits["val"].paths
    assert a.split_record["val"] == sorted(a.split_record["val"]) and len(a.split_record["val"]) == 6
    c = read_layout(class_folders, val_ratio=0.5, seed=1)
    assert c.counts()["val"] == [5, 5, 5]


def test_imagefolder_with_splits():
    ds = zoo.create_dataset(str(shared_data("hymenoptera")))
    assert ds.layout == "imagefolder" and ds.classes == ["ants", "bees"]
    assert (len(ds.train), len(ds.eval)) == (245, 153) and ds.eval_split_name == "val"


def test_list_files_with_class_names():
    shared_data("food20")
    ds = zoo.create_dataset("food20")
    assert ds.layout == "listfile" and len(ds.classes) == 20 and ds.classes[0] == "apple_pie"
    assert (len(ds.train), len(ds.eval)) == (10000, 2000)
    assert ds.counts()["train"] == [500] * 20


def test_cifar_pickles_and_tar_gz(tmp_path):
    shared_data("cifar10")
    ds = zoo.create_dataset("cifar10")
    assert ds.layout == "cifar" and ds.classes[:2] == ["airplane", "automobile"]
    assert ds.train.images.shape == (1000, 32, 32, 3) and ds.eval_split_name == "test"
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(shared_data("cifar10") / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    from_tar = zoo.create_dataset(str(archive))
    assert np.array_equal(from_tar.train.images, ds.train.images)


def test_jsonl_with_names_and_split(tmp_path):
    lines = []
    for c, (name, color) in enumerate(COLORS.items()):
        for i in range(6):
            write_image(tmp_path / "img" / f"{name}{i}.png", color, seed=i)
            lines.append({"path": f"img/{name}{i}.png", "label": name, "split": "val" if i < 2 else "train"})
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    ds = zoo.create_dataset(str(tmp_path / "data.jsonl"))
    assert ds.layout == "jsonl" and ds.classes == ["blue", "green", "red"]
    assert ds.counts() == {"train": [4, 4, 4], "val": [2, 2, 2]}
    (tmp_path / "nosplit.jsonl").write_text("\n".join(json.dumps({"path": x["path"], "label": x["label"]}) for x in lines))
    assert zoo.create_dataset(str(tmp_path / "nosplit.jsonl")).counts()["val"] == [1, 1, 1]


def test_unknown_path_and_layout_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        zoo.create_dataset(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no dataset layout found"):
        zoo.create_dataset(str(tmp_path / "empty"))


def test_bad_inputs_follow_expected_json():
    folder = shared_data("bad_inputs")
    expected = json.loads((folder / "expected.json").read_text())
    for name, rule in expected.items():
        path = folder / name
        if rule["expect"] == "ignore":
            assert not is_candidate(path), name
            continue
        assert is_candidate(path), name
        if rule["expect"] == "load":
            image = decode_rgb(path)
            assert image.mode == "RGB", name
        else:
            with pytest.raises(BadImageError):
                decode_rgb(path)
    assert decode_rgb(folder / "exif_orientation_6.jpg").size == (72, 96)
    gray16 = np.asarray(decode_rgb(folder / "gray16_I16.png")).astype(int)
    gray8 = np.asarray(decode_rgb(folder / "gray_L.png")).astype(int)
    assert np.abs(gray16 - gray8).max() <= 1


def _mix_bad_inputs(root):
    hym = shared_data("hymenoptera")
    for split in ("train", "val"):
        for cls in ("ants", "bees"):
            for src in sorted((hym / split / cls).glob("*.jpg"))[:8]:
                (root / split / cls).mkdir(parents=True, exist_ok=True)
                shutil.copy(src, root / split / cls / src.name)
    for f in shared_data("bad_inputs").iterdir():
        shutil.copy(f, root / "train" / "ants" / f.name)
    expected = json.loads((shared_data("bad_inputs") / "expected.json").read_text())
    return expected


def test_training_iterates_past_bad_files(tmp_path, caplog):
    import torch

    from zoo.data.loader import TransformedImages
    from zoo.data.transforms import train_transform

    expected = _mix_bad_inputs(tmp_path)
    n_bad = sum(r["expect"] in ("skip", "refuse") for r in expected.values())
    n_load = sum(r["expect"] == "load" for r in expected.values())
    with caplog.at_level("WARNING", logger="zoo.data"):
        ds = zoo.create_dataset(str(tmp_path))
    assert len(ds.skipped) == n_bad == 7
    assert len(ds.train) == 16 + n_load
    warned = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipping")]
    assert len(warned) == n_bad and any("truncated.jpg" in w for w in warned)
    pre = zoo.model_info("resnet18").preprocessing(32)
    loader = torch.utils.data.DataLoader(TransformedImages(ds.train, train_transform(pre, "light")), batch_size=8)
    seen = sum(len(labels) for _, labels in loader)
    assert seen == len(ds.train)


def test_all_bad_files_is_an_error(tmp_path):
    for f in ("empty.jpg", "truncated.jpg", "html_page.jpg"):
        (tmp_path / "cls").mkdir(exist_ok=True)
        shutil.copy(shared_data("bad_inputs") / f, tmp_path / "cls" / f)
        (tmp_path / "cls2").mkdir(exist_ok=True)
        shutil.copy(shared_data("bad_inputs") / f, tmp_path / "cls2" / f)
    with pytest.raises(DataError, match="no usable images"):
        zoo.create_dataset(str(tmp_path))


def test_data_check_reports_duplicates_and_bad_files(tmp_path):
    _mix_bad_inputs(tmp_path)
    dup = next((tmp_path / "train" / "bees").glob("*.jpg"))
    shutil.copy(dup, tmp_path / "val" / "bees" / "copy.jpg")
    result = CliRunner().invoke(app, ["data", "check", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "layout    imagefolder" in result.output and "skipped   7 unreadable files" in result.output
    assert "duplicates 1 images" in result.output and "copy.jpg" in result.output


def test_data_check_missing_dataset_exits_1(tmp_path):
    result = CliRunner().invoke(app, ["data", "check", str(tmp_path / "nope")])
    assert result.exit_code == 1 and "does not exist" in result.output


def _archive_dataset(tmp_path, members):
    archive = tmp_path / "served" / "toy.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        for name, path in members:
            tf.add(path, arcname=name)
    return archive, "md5:" + hashlib.md5(archive.read_bytes()).hexdigest()


def test_named_dataset_downloads_verifies_and_extracts(tmp_path, loopback_server, fresh_registry, monkeypatch):
    served, base = loopback_server
    files = [(f"{c}/{i}.png", write_image(tmp_path / "src" / c / f"{i}.png", color, seed=i))
             for c, color in COLORS.items() for i in range(4)]
    _, checksum = _archive_dataset(tmp_path, files)
    fresh_registry.ensure_loaded("zoo.datasets")
    fresh_registry.add_dataset(DatasetInfo(
        name="toy", factory="zoo.data.named:folder_dataset", factory_kwargs={"layout": "classfolders"},
        url=f"{base}/toy.tar.gz", checksum=checksum))
    monkeypatch.setenv("ZOO_DATA_ROOT", str(tmp_path / "roots"))
    ds = zoo.create_dataset("toy")
    assert ds.classes == sorted(COLORS) and len(ds.train) + len(ds.eval) == 12
    assert (tmp_path / "roots" / "toy" / "red" / "0.png").is_file()


def test_named_dataset_malicious_archive_is_refused(tmp_path, loopback_server, fresh_registry, monkeypatch):
    served, base = loopback_server
    evil = write_image(tmp_path / "evil.png", (0, 0, 0))
    _, checksum = _archive_dataset(tmp_path, [("../../escaped.png", evil)])
    fresh_registry.ensure_loaded("zoo.datasets")
    fresh_registry.add_dataset(DatasetInfo(name="evil", factory="zoo.data.named:folder_dataset",
                                           url=f"{base}/toy.tar.gz", checksum=checksum))
    monkeypatch.setenv("ZOO_DATA_ROOT", str(tmp_path / "roots"))
    with pytest.raises(DataError, match="outside the target folder"):
        zoo.create_dataset("evil")
    assert not list(tmp_path.rglob("escaped.png"))


def test_absent_named_dataset_offline_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_DATA_ROOT", str(tmp_path))
    with pytest.raises(DataError) as excinfo:
        zoo.create_dataset("hymenoptera")
    message = str(excinfo.value)
    assert "\n" not in message and "hymenoptera_data.zip" in message and str(tmp_path / "hymenoptera") in message


def test_embedded_digits_needs_no_files():
    ds = zoo.create_dataset("digits")
    assert ds.num_classes == 10 and ds.train.images.shape[1:] == (32, 32, 3) and len(ds.train) + len(ds.eval) == 1797


def test_detect_layout_names(class_folders):
    assert detect_layout(class_folders) == "classfolders"
    assert detect_layout(shared_data("food20")) == "listfile"
    assert detect_layout(shared_data("cifar10")) == "cifar"
