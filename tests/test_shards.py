"""`zoo data pack` and training on WebDataset shards: the bytes as stored, packing that survives a stop,
a stream that gives every sample to exactly one process and worker, exact resume, accuracy as the folder
gives it, a remote card over HTTP, and two DDP processes that see every sample once per epoch."""

import functools
import http.server
import json
import os
import subprocess
import sys
import tarfile
import threading

import numpy as np
import pytest
import torch

import zoo
from tests.conftest import COLORS, ROOT, shared_data, write_image
from zoo.data import shards
from zoo.errors import DataError

pytest.importorskip("webdataset", reason="webdataset is not installed (make test installs it)")


@pytest.fixture(scope="module")
def packed_hymenoptera(tmp_path_factory):
    out = tmp_path_factory.mktemp("packed") / "hymenoptera"
    result = shards.pack(str(shared_data("hymenoptera")), out, "4MB", progress=False)
    return out, result


def test_pack_keeps_the_bytes_as_stored_and_the_labels(packed_hymenoptera):
    out, result = packed_hymenoptera
    folder = zoo.create_dataset(str(shared_data("hymenoptera")))
    assert result.splits == {"train": {"shards": result.splits["train"]["shards"], "samples": 245},
                             "val": {"shards": result.splits["val"]["shards"], "samples": 153}}
    assert result.splits["train"]["shards"] > 1
    card = json.loads((out / "dataset.json").read_text())
    assert card["classes"] == ["ants", "bees"] and card["splits"]["train"]["labels"] == folder.train.labels.tolist()
    found = {}
    for shard in sorted(out.glob("train-*.tar")):
        with tarfile.open(shard) as tar:
            names = tar.getnames()
            if "train000000000.jpg" in names:
                found = {"jpg": tar.extractfile("train000000000.jpg").read(), "cls": tar.extractfile("train000000000.cls").read()}
            classes = {tar.extractfile(n).read() for n in names if n.endswith(".cls")}
            assert classes == {b"0", b"1"}, shard  # written in a shuffled order: both classes in every shard
    first, label = found["jpg"], found["cls"]
    assert first == open(folder.train.paths[0], "rb").read() and label == str(folder.train.labels[0]).encode()
    packed = zoo.create_dataset(str(out))
    assert packed.layout == "shards" and packed.counts() == folder.counts()
    assert np.array_equal(np.asarray(packed.train.load(200)), np.asarray(folder.train.load(200)))  # random access


def test_each_sample_goes_to_one_process_and_one_worker(packed_hymenoptera):
    out, _ = packed_hymenoptera
    train = zoo.create_dataset(str(out)).train
    for epoch in (0, 1):
        seen = []
        for rank in range(2):
            stream = shards.StreamingImages(train, None, shuffle=True, seed=3, rank=rank, world=2)
            stream.epoch = epoch
            mine = [i for worker in range(3) for i, _ in stream.samples(worker, 3)]
            assert abs(len(mine) - len(train) / 2) <= 0.5
            seen += mine
        assert sorted(seen) == list(range(len(train)))
    order = [[i for i, _ in shards.StreamingImages(train, None, True, seed=3).samples()] for _ in range(2)]
    assert order[0] == order[1] and order[0] != sorted(order[0])  # shuffled, and the same for the same epoch


def test_a_stopped_pack_continues_after_its_last_whole_shard(tmp_path, monkeypatch):
    data, out = str(shared_data("hymenoptera")), tmp_path / "packed"
    clean = shards.pack(data, tmp_path / "clean", "4MB", progress=False)
    real, calls = shards._write_shard, []

    def dies_on_the_third(*args):
        calls.append(args[0].name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(shards, "_write_shard", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        shards.pack(data, out, "4MB", progress=False)
    left = sorted(p.name for p in out.iterdir())
    assert left == [".pack-progress.json", "train-000000.tar", "train-000001.tar"]  # no card, no partial shard
    monkeypatch.setattr(shards, "_write_shard", real)
    result = shards.pack(data, out, "4MB", progress=False)
    assert result.resumed_shards == 2 and not (out / ".pack-progress.json").exists()
    for name in os.listdir(tmp_path / "clean"):
        assert (out / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name
    assert clean.splits == result.splits


def test_pack_refuses_a_folder_of_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="is not empty and holds no pack of this data"):
        shards.pack(str(shared_data("hymenoptera")), tmp_path, progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine" and len(list(tmp_path.iterdir())) == 1


def test_a_bad_sample_is_skipped_with_a_warning(tmp_path, caplog):
    for i in range(6):
        write_image(tmp_path / "data" / ("red" if i % 2 else "blue") / f"{i}.png", COLORS["red" if i % 2 else "blue"],
                    seed=i)
    shards.pack(str(tmp_path / "data"), tmp_path / "packed", "1MB", progress=False)
    shard = next((tmp_path / "packed").glob("train-*.tar"))
    with tarfile.open(shard) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    broken = next(m.name for m, _ in members if m.name.endswith(".png"))
    with tarfile.open(shard, "w") as tar:  # the first image's bytes replaced by garbage of the same name
        for member, data in members:
            data = b"not an image" if member.name == broken else data
            member.size = len(data)
            tar.addfile(member, __import__("io").BytesIO(data))
    train = zoo.create_dataset(str(tmp_path / "packed")).train
    got = [i for i, _ in shards.StreamingImages(train, None, False).samples()]
    assert len(got) == len(train) - 1 and "skipped a bad sample" in caplog.text


def test_shard_training_resumes_exactly(packed_hymenoptera, tmp_path):
    out, _ = packed_hymenoptera
    common = dict(model="example_tinynet", data=str(out), batch_size=32, image_size=32, workers=0, quiet=True)
    from zoo.engine.callbacks import StopTraining

    class StopAfterFirst:
        def on_epoch_end(self, result):
            raise StopTraining("a stop at the epoch boundary")

    zoo.finetune(epochs=2, output=str(tmp_path / "straight"), **common)
    zoo.finetune(epochs=2, output=str(tmp_path / "stopped"), callbacks=[StopAfterFirst()], **common)
    zoo.finetune(resume=str(tmp_path / "stopped"), workers=0, quiet=True)
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "straight" / "last.safetensors"), load_file(tmp_path / "stopped" / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_card_served_over_http_trains(packed_hymenoptera, tmp_path):
    out, _ = packed_hymenoptera
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out.parent))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{out.name}"
        remote = zoo.create_dataset(url)
        assert remote.counts() == zoo.create_dataset(str(out)).counts()
        result = zoo.finetune(model="example_tinynet", data=url, epochs=1, batch_size=32, image_size=32, workers=0,
                              quiet=True, output=str(tmp_path / "run"))
        assert result.history[-1].images == 224  # 7 full batches of the 245 samples, all read over HTTP
    finally:
        server.shutdown()


def _pack_subset(source, out, per_class: int, split_names=("train", "test")):
    """An imagefolder of links to the first ``per_class`` training images of each class (a third as many for
    evaluation), packed."""
    folder = out.parent / f"{out.name}-folder"
    for split in split_names:
        for class_dir in sorted((source / split).iterdir()):
            for image in sorted(class_dir.iterdir())[:per_class if split == "train" else per_class // 3]:
                target = folder / split / class_dir.name / image.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(image)
    shards.pack(str(folder), out, "2MB", progress=False)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("name, per_class, model, size, epochs", [
    ("hymenoptera", None, "resnet18", 64, 6), ("cifar10-jpg", 300, "resnet18_cifar", 32, 4)])
def test_shards_train_as_well_as_the_folder(tmp_path, name, per_class, model, size, epochs):
    source = shared_data(name)
    if per_class:
        folder = _pack_subset(source, tmp_path / "packed", per_class)
    else:
        folder = source
        shards.pack(str(source), tmp_path / "packed", "8MB", progress=False)
    scores = {}
    for kind, data in (("folder", folder), ("shards", tmp_path / "packed")):
        result = zoo.finetune(model=model, data=str(data), epochs=epochs, image_size=size, seed=0, quiet=True,
                              output=str(tmp_path / kind))
        scores[kind] = result.best_top1
    classes = len(zoo.create_dataset(str(folder)).classes)
    assert min(scores.values()) > 1 / classes + 0.1, scores  # both learn
    assert abs(scores["folder"] - scores["shards"]) < 0.1, scores  # within the noise of two pipelines


DDP_SCRIPT = """
import json, os, sys, zoo
from zoo.data import shards
seen = []
real = shards.StreamingImages.samples
def recording(self, worker=0, workers=1):
    for index, image in real(self, worker, workers):
        if self.shuffle:
            seen.append([self.epoch, index])
        yield index, image
shards.StreamingImages.samples = recording
zoo.finetune(model="example_tinynet", data=sys.argv[1], epochs=2, batch_size=8, image_size=24, workers=0, quiet=True,
             output=sys.argv[2], overwrite=True)
with open(os.path.join(sys.argv[2], f"seen{os.environ['RANK']}.json"), "w") as f:
    json.dump(seen, f)
"""


@pytest.mark.slow
def test_two_ddp_processes_see_every_sample_once_per_epoch(tmp_path):
    for i in range(80):  # 64 training samples, 2 processes, batch 8: 4 full batches each
        split, color = "train" if i < 64 else "val", ("red", "green")[i % 2]
        write_image(tmp_path / "data" / split / color / f"{i}.png", COLORS[color], seed=i)
    shards.pack(str(tmp_path / "data"), tmp_path / "packed", "20KB", progress=False)
    assert len(list((tmp_path / "packed").glob("train-*.tar"))) > 2
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    from tests.test_elastic import _free_port

    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                    str(_free_port()), str(script), str(tmp_path / "packed"), str(tmp_path / "run")],
                   check=True, env=env, timeout=600, capture_output=True)
    train = len(zoo.create_dataset(str(tmp_path / "packed")).train)
    seen = [json.loads((tmp_path / "run" / f"seen{r}.json").read_text()) for r in range(2)]
    for epoch in (0, 1):
        per_rank = [[i for e, i in ranks if e == epoch] for ranks in seen]
        assert all(len(indices) == train // 2 for indices in per_rank)
        assert sorted(per_rank[0] + per_rank[1]) == list(range(train))  # each sample once, on one process
