"""Nothing lost, nothing silent: run folders zoo will not clobber, resumes that check what they resume,
and every bad input named in one line."""

import errno
import json
import os
import pickle
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import zoo
from zoo.cli import app
from zoo.errors import DataError, TrainingError, ZooError
from tests.conftest import COLORS, ROOT, shared_data, write_image
from tests.plugin_factory import make_plugin

runner = CliRunner()
FAST = dict(quiet=True, workers=0)
SHAPES = dict(model="example_tinynet", data="example_shapes", batch_size=32, **FAST)


def _train(output, **options):
    return zoo.finetune(output=str(output), **{**SHAPES, "epochs": 1, **options})


# -- the run folder ---------------------------------------------------------------------------------------------
def test_a_folder_zoo_did_not_make_is_never_written(tmp_path):
    mine = tmp_path / "results"
    mine.mkdir()
    (mine / "config.json").write_text('{"mine": true}')
    (mine / "metrics.csv").write_text("a,b\n")
    with pytest.raises(TrainingError, match="folder zoo did not make and it is not empty"):
        _train(mine)
    with pytest.raises(TrainingError, match="folder zoo did not make"):
        _train(mine, overwrite=True)
    assert sorted(p.name for p in mine.iterdir()) == ["config.json", "metrics.csv"]
    assert (mine / "config.json").read_text() == '{"mine": true}'
    (tmp_path / "empty").mkdir()
    _train(tmp_path / "empty")  # an empty folder is fine
    assert (tmp_path / "empty" / ".zoo-run").is_file() and (tmp_path / "empty" / "last.safetensors").is_file()


def test_a_user_file_named_latest_is_left_alone(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "latest").write_text("my notes")
    with caplog.at_level("WARNING", logger="zoo"):
        zoo.finetune(**{**SHAPES, "epochs": 1})
    assert (tmp_path / "runs" / "latest").read_text() == "my notes"
    assert any("not updating" in r.getMessage() for r in caplog.records)


LOCK_HOLDER = """
import sys, time
from zoo.runs import RunFolder
with RunFolder(sys.argv[1]).locked():
    print("locked", flush=True)
    time.sleep(30)
"""


def test_a_second_run_on_the_same_folder_is_refused_naming_the_holder(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(run)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(TrainingError, match=rf"is in use by another zoo process \(pid {holder.pid}\)"):
            _train(run)
        assert not run.exists()
    finally:
        holder.kill()
        holder.wait()
    _train(run)  # the kernel dropped the lock with the process
    assert not (tmp_path / ".run.lock").exists()  # released and removed


def test_resume_refuses_another_model_or_data_and_changes_nothing(tmp_path):
    run = tmp_path / "run"
    _train(run)
    files = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(TrainingError, match="trained with model 'example_tinynet', not 'resnet18_cifar'"):
        zoo.finetune(model="resnet18_cifar", resume=str(run), epochs=2, **FAST)
    shifted = tmp_path / "shifted"  # the same three classes, other images
    for c, (name, color) in enumerate(sorted(COLORS.items())):
        for i in range(6):
            write_image(shifted / name / f"{i}.png", color, seed=50 + i)
    with pytest.raises(TrainingError, match="classes"):
        zoo.finetune(resume=str(run), data=str(shifted), epochs=2, **FAST)
    other_shapes = tmp_path / "other"
    dataset = zoo.create_dataset("example_shapes")
    for split in ("train", "val"):
        source = dataset.splits[split]
        for i in range(0, len(source), 3):  # a third of the images, same class names
            folder = other_shapes / split / dataset.classes[int(source.labels[i])]
            folder.mkdir(parents=True, exist_ok=True)
            source.load(i).save(folder / f"{i}.png")
    with pytest.raises(TrainingError, match="other images: the data given"):
        zoo.finetune(resume=str(run), data=str(other_shapes), epochs=2, **FAST)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == files  # config.json included


OVERWRITE_SCRIPT = """
import sys, zoo
zoo.finetune(model="example_tinynet", data="digits", epochs=2, batch_size=16, lr=float(sys.argv[2]),
             output=sys.argv[1], overwrite=True, quiet=True, workers=0)
"""


def test_overwrite_killed_in_its_first_epoch_leaves_the_old_run_whole(tmp_path):
    run = tmp_path / "run"
    _train(run, data="digits", batch_size=16)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    proc = subprocess.Popen([sys.executable, "-c", OVERWRITE_SCRIPT, str(run), "0.01"],
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.time() + 120
    while not list(tmp_path.glob(".run.staging-*/config.json")) and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # into the first epoch of the new run
    proc.kill()
    proc.wait()
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before  # the old run, whole
    result = zoo.finetune(resume=str(run), epochs=2, **FAST)  # continues the old run, not a mix
    assert result.epochs_run == 1 and not list(tmp_path.glob(".run.*"))  # staging cleaned on the next start
    assert json.loads((run / "config.json").read_text())["lr"] is None


def test_a_run_killed_before_its_first_checkpoint_restarts_in_place(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".zoo-run").write_text("{}")
    (run / "config.json").write_text(json.dumps(zoo.TrainConfig(**{**SHAPES, "epochs": 1}, output=str(run)).to_dict()))
    (run / ".resume-abc123").mkdir()  # half-written resume state of a killed first epoch
    (run / ".resume-abc123" / "state.pt").write_bytes(b"x" * 1000)
    with pytest.raises(TrainingError, match="no finished epoch to resume from; start it again without --resume"):
        zoo.finetune(resume=str(run), epochs=1, **FAST)
    _train(run)  # no --overwrite needed: there was nothing to lose
    assert (run / "last.safetensors").is_file() and not (run / ".resume-abc123").exists()


def test_disk_full_is_one_line_and_the_previous_checkpoint_stays(tmp_path, monkeypatch):
    import zoo.files

    run = tmp_path / "run"
    _train(run)
    good = (run / "last.safetensors").read_bytes()
    real = zoo.files._fsync

    def full(path):
        if path.name.startswith(".last.safetensors"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path)

    monkeypatch.setattr(zoo.files, "_fsync", full)
    result = runner.invoke(app, ["finetune", "--resume", str(run), "--epochs", "2", "-q", "--workers", "0"])
    assert result.exit_code == 1
    assert result.output.strip() == (f"error: no space left on device writing {run / 'last.safetensors'}; the "
                                     "previous version of it is intact, free some space and run again")
    assert (run / "last.safetensors").read_bytes() == good
    assert not [p for p in run.iterdir() if p.name.startswith(".last")]


# -- caches -----------------------------------------------------------------------------------------------------
def test_cache_clear_asks_and_all_keeps_user_placed_datasets(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("ZOO_CACHE", str(cache))
    for kind in ("decoded", "datasets", "weights"):
        (cache / kind).mkdir(parents=True)
        (cache / kind / "f").write_bytes(b"x" * 100)
    result = runner.invoke(app, ["cache", "clear", "all"])
    assert result.exit_code == 2 and "pass --yes" in result.output and (cache / "decoded" / "f").exists()
    result = runner.invoke(app, ["cache", "clear", "all", "--yes"])
    assert result.exit_code == 0 and not (cache / "decoded").exists() and not (cache / "weights").exists()
    assert (cache / "datasets" / "f").exists()  # where zoo tells users to put manual downloads
    assert runner.invoke(app, ["cache", "clear", "datasets", "-y"]).exit_code == 0
    assert not (cache / "datasets").exists()


def test_the_extraction_cache_follows_the_archive_not_its_name(tmp_path):
    shared = shared_data("cifar10") / "cifar-10-batches-py"
    archive = tmp_path / "cifar-10-python.tar.gz"

    def pack(count: int) -> None:
        work = tmp_path / f"work{count}" / "cifar-10-batches-py"
        work.mkdir(parents=True)
        for name in ("batches.meta", "test_batch"):
            (work / name).write_bytes((shared / name).read_bytes())
        batch = pickle.loads((shared / "data_batch_1").read_bytes(), encoding="latin1")
        batch = {**batch, "data": batch["data"][:count], "labels": batch["labels"][:count]}
        (work / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=2))
        with tarfile.open(archive, "w:gz") as tf:
            tf.add(work, arcname="cifar-10-batches-py")

    pack(50)
    assert len(zoo.create_dataset(str(archive)).train) == 50
    time.sleep(0.01)
    pack(80)  # another archive under the same name
    assert len(zoo.create_dataset(str(archive)).train) == 80


# -- bad data is named --------------------------------------------------------------------------------------------
def _jsonl(tmp_path, lines, images=6):
    for i in range(images):
        write_image(tmp_path / f"{i}.png", (40 * i, 80, 80), seed=i)
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines))
    return path


@pytest.mark.parametrize("line,message", [
    ('{"path": "0.png", "label": 1.5}', "label 1.5 is neither a class name nor a class index"),
    ('{"path": "0.png", "label": null}', "label null is neither"),
    ('{"path": "0.png", "label": [1, 2]}', r"label \[1, 2\] is neither"),
    ('{"path": "0.png", "label": -1}', "label -1 is negative"),
    ('["0.png", 1]', "expected an object"),
    ('{"path": 7, "label": 1}', r"needs a 'path' \(a string\)"),
    ('{"path": "0.png", "label": "cat"}', "is a str but .*data.jsonl:1 gives a int"),
    ('{"path": "0.png", "label": 1000000000}', "labels make 1,000,000,001 classes for 6 images"),
])
def test_bad_jsonl_labels_name_file_and_line(tmp_path, line, message):
    lines = [json.dumps({"path": f"{i}.png", "label": i % 2}) for i in range(1, 6)]
    path = _jsonl(tmp_path, lines[:1] + [line] + lines[1:])
    with pytest.raises(DataError, match=message) as excinfo:
        zoo.create_dataset(str(path))
    assert f"{path}:2" in str(excinfo.value) or "classes for" in str(excinfo.value)


def test_list_file_labels_are_checked_and_duplicates_removed(tmp_path, caplog):
    for i in range(8):
        write_image(tmp_path / "img" / f"{i}.png", (30 * i, 60, 60), seed=i)
    (tmp_path / "classes.txt").write_text("honey bee\nwasp\n")
    (tmp_path / "train.txt").write_text("img/0.png 0\nimg/1.png 1\nimg/2.png 0\nimg/3.png 1\nimg/0.png 0\n")
    (tmp_path / "val.txt").write_text("img/4.png 0\nimg/5.png 1\nimg/1.png 1\n")
    with caplog.at_level("WARNING", logger="zoo.data"):
        dataset = zoo.create_dataset(str(tmp_path))
    assert dataset.classes == ["honey bee", "wasp"]  # one name per line, spaces kept
    assert dataset.counts() == {"train": [2, 2], "val": [1, 1]}  # duplicate dropped, leaked image left out of val
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "lists 1 images more than once" in messages and "1 images of val.txt are also in the train split" in messages
    (tmp_path / "val.txt").write_text("img/4.png 0\nimg/5.png -1\n")
    with pytest.raises(DataError, match=rf"{tmp_path / 'val.txt'}:2: label -1 is negative"):
        zoo.create_dataset(str(tmp_path))
    (tmp_path / "val.txt").write_text("img/4.png 0\nimg/5.png 7\n")
    with pytest.raises(DataError, match=r"val.txt:2: label 7 is out of range: classes.txt names 2 classes"):
        zoo.create_dataset(str(tmp_path))


def test_a_class_without_training_images_is_refused(tmp_path):
    for name in ("ants", "bees"):
        for i in range(3):
            write_image(tmp_path / "train" / name / f"{i}.png", (200, 40, 40), seed=i)
            write_image(tmp_path / "val" / name / f"{i}.png", (200, 40, 40), seed=10 + i)
    (tmp_path / "train" / "wasps").mkdir()
    (tmp_path / "train" / "wasps" / "broken.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="classes with no training images: wasps .*1 files skipped as unreadable"):
        zoo.create_dataset(str(tmp_path))
    result = runner.invoke(app, ["data", "check", str(tmp_path)])
    assert result.exit_code == 1 and "classes with no training images: wasps" in result.output


def _cifar_folder(tmp_path, batch):
    shared = shared_data("cifar10") / "cifar-10-batches-py"
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "batches.meta").write_bytes((shared / "batches.meta").read_bytes())
    (folder / "test_batch").write_bytes((shared / "test_batch").read_bytes())
    (folder / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=2))
    return folder


@pytest.mark.parametrize("change,message", [
    (lambda b: {**b, "labels": b["labels"][:-1]}, "200 images but 199 labels"),
    (lambda b: {**b, "data": b["data"][:, :100]}, r"'data' has shape \(200, 100\)"),
    (lambda b: {k: v for k, v in b.items() if k != "labels"}, "has no 'labels' entry"),
    (lambda b: [b["data"], b["labels"]], "holds a list, not a CIFAR batch"),
    (lambda b: {**b, "labels": [99] + list(b["labels"][1:])}, "label 99 is outside the 10 classes"),
])
def test_cifar_batches_are_checked(tmp_path, change, message):
    original = pickle.loads((shared_data("cifar10") / "cifar-10-batches-py" / "data_batch_1").read_bytes(),
                            encoding="latin1")
    folder = _cifar_folder(tmp_path, change(original))
    with pytest.raises(DataError, match=message):
        zoo.create_dataset(str(folder))


def test_cifar_batch_repickled_by_python3_still_loads(tmp_path):
    original = pickle.loads((shared_data("cifar10") / "cifar-10-batches-py" / "data_batch_1").read_bytes(),
                            encoding="latin1")
    dataset = zoo.create_dataset(str(_cifar_folder(tmp_path, original)))  # protocol 2, written by Python 3
    assert len(dataset.train) == 200 and np.array_equal(dataset.train.labels, original["labels"])


def test_a_huge_file_is_sniffed_by_its_header_only(tmp_path):
    import resource

    from zoo.data.decode import BadImageError, decode_rgb

    huge = tmp_path / "x.jpg"
    with open(huge, "wb") as f:
        f.write(b"\x00" * 16)
        f.truncate(3 << 30)  # sparse: 3 GB that take no disk
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(BadImageError, match="not an image"):
        decode_rgb(huge)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KB: far below 3 GB


def test_weights_with_a_wrong_body_layer_are_refused_even_with_new_head(tmp_path):
    from safetensors.torch import save_file

    state = zoo.create_model("example_tinynet", num_classes=5).state_dict()
    state["features.0.weight"] = torch.zeros(8, 3, 3, 3)  # a body layer of another width
    path = tmp_path / "w.safetensors"
    save_file(state, str(path))
    with pytest.raises(ZooError, match=r"features.0.weight has another shape \(\(8, 3, 3, 3\) vs \(16, 3, 3, 3\)"):
        zoo.finetune(output=str(tmp_path / "run"), weights=str(path), new_head=True, **{**SHAPES, "epochs": 1})
    assert not (tmp_path / "run").exists()


def test_damaged_checkpoint_metadata_is_one_line(tmp_path):
    run = tmp_path / "run"
    _train(run)
    meta = json.loads((run / "best.json").read_text())
    (run / "best.json").write_text(json.dumps({**meta, "preprocessing": {**meta["preprocessing"], "input_size": 30000}}))
    result = runner.invoke(app, ["export", str(run), "-o", str(tmp_path / "e")])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "input_size 30000 is not a whole number of pixels from 1 to 4096" in result.output
    assert str(run / "best.json") in result.output
    (run / "best.json").write_text("{oops")
    result = runner.invoke(app, ["predict", str(run / "best.safetensors"), str(tmp_path)])
    assert result.exit_code == 1 and "is not valid JSON" in result.output and str(run / "best.json") in result.output


@pytest.mark.parametrize("args,message", [
    (["--image-size", "0"], "--image-size 0 is out of range; it must be >= 8 and <= 4096"),
    (["--grad-clip", "-1"], "--grad-clip -1 is out of range; it must be > 0"),
    (["--lr", "-1"], "--lr -1 is out of range; it must be > 0 and <= 1e+06"),
    (["--label-smoothing", "5"], "--label-smoothing 5 is out of range; it must be >= 0 and < 1"),
    (["--device", "tpu"], "--device 'tpu' is not valid; use auto | cpu | cuda | cuda:N | mps"),
    (["--milestones", "a,b"], "--milestones takes whole numbers separated by commas, e.g. 30,60; got 'a,b'"),
    (["--val-ratio", "1.5"], "--val-ratio 1.5 is out of range; it must be > 0 and < 1"),
    (["--freeze", "half"], "--freeze 'half' is not valid; use none | backbone | N"),
])
def test_option_values_are_checked_with_the_allowed_range(tmp_path, args, message):
    result = runner.invoke(app, ["finetune", "example_tinynet", "--data", "example_shapes", "-o", str(tmp_path / "r"),
                                 *args])
    assert result.exit_code == 1 and result.output == f"error: {message}\n"
    assert not (tmp_path / "r").exists()


# -- plugins ------------------------------------------------------------------------------------------------------
FACTORY_RAISES = """
def register(ctx):
    ctx.add_model("fragile_net", "zoo_fragile_mod:factory")

def factory(num_classes):
    raise ValueError("this plugin needs a GPU")
"""


def test_a_plugin_factory_that_raises_names_the_plugin(tmp_path, fresh_registry, monkeypatch):
    site = tmp_path / "site"
    monkeypatch.syspath_prepend(str(site))
    make_plugin(site, "zoo-fragile", FACTORY_RAISES, {"zoo.models": "fragile = MODULE:register"})
    result = runner.invoke(app, ["finetune", "fragile_net", "--data", "example_shapes", "-o", str(tmp_path / "r")])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert ("error: the factory of model 'fragile_net' (from zoo-fragile) failed: ValueError: this plugin needs a GPU"
            in result.output)


def _run_zoo(args, site, cache):
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{ROOT}", "ZOO_CACHE": str(cache)}
    return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True, env=env, timeout=120)


def test_a_plugin_calling_sys_exit_is_isolated(tmp_path):
    site = tmp_path / "site"
    make_plugin(site, "zoo-exits", "import sys\nsys.exit(3)\n", {"zoo.models": "exits = MODULE:register"})
    for args in (["list"], ["plugins"]):
        done = _run_zoo(args, site, tmp_path / "cache")
        assert done.returncode == 0, done.stderr
    assert "FAILED  zoo-exits" in done.stdout and "called sys.exit(3)" in done.stdout


SLOW_PLUGIN = """
import os, time
with open(os.environ["IMPORT_LOG"], "a") as log:
    log.write("imported\\n")
time.sleep(2)

def register(ctx):
    ctx.add_model("slow_net", "zoo.models.resnet:build_resnet", factory_kwargs={"variant": "resnet18"}, input_size=64)
"""


def test_listing_does_not_import_a_slow_plugin_twice(tmp_path, monkeypatch):
    site = tmp_path / "site"
    make_plugin(site, "zoo-slow", SLOW_PLUGIN, {"zoo.models": "slow = MODULE:register"})
    monkeypatch.setenv("IMPORT_LOG", str(tmp_path / "imports.log"))
    first = _run_zoo(["list", "slow*"], site, tmp_path / "cache")
    started = time.perf_counter()
    second = _run_zoo(["list", "slow*"], site, tmp_path / "cache")
    elapsed = time.perf_counter() - started
    assert "slow_net" in first.stdout and "slow_net" in second.stdout
    assert (tmp_path / "imports.log").read_text().count("imported") == 1  # the second listing imported nothing
    assert elapsed < 2.0
    touched = site / "zoo_slow_mod.py"
    touched.write_text(touched.read_text().replace('"slow_net"', '"slow_net2"'))  # new code: loaded for real
    os.utime(touched, (time.time() + 5, time.time() + 5))
    assert "slow_net2" in _run_zoo(["list", "slow*"], site, tmp_path / "cache").stdout


def test_an_archive_member_linking_outside_is_one_line(tmp_path):
    from zoo.errors import DownloadError
    from zoo.hub import extract_archive

    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tf:
        info = tarfile.TarInfo("data/hard")
        info.type = tarfile.LNKTYPE
        info.linkname = "../../outside"
        tf.addfile(info)
    with pytest.raises(DownloadError, match=r"has a member 'data/\.\./\.\./outside' that points outside"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with tarfile.open(archive, "w") as tf:  # a hard link names its target from the archive root
        info = tarfile.TarInfo("data/hard")
        info.type = tarfile.LNKTYPE
        info.linkname = "../outside"
        tf.addfile(info)
    with pytest.raises(DownloadError) as excinfo:
        extract_archive(archive, tmp_path / "out")
    assert "'data/hard'" in str(excinfo.value) and "\n" not in str(excinfo.value)
    assert not (tmp_path / "out").exists() and not (tmp_path / "outside").exists()
