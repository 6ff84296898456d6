"""The README's promises on any machine and input (issue "every promise holds"): nothing is lost
when zoo refuses, fails, is killed or runs twice at once; exports describe exactly their files."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import zoo
from zoo.cli import app
from zoo.errors import DataError, TrainingError, ZooError
from tests.conftest import ROOT, shared_data

runner = CliRunner()
SHAPES = dict(model="example_tinynet", data="example_shapes", batch_size=32, quiet=True, workers=0, epochs=1,
              max_steps_per_epoch=2)


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("promises") / "shapes"
    zoo.finetune(**{**SHAPES, "epochs": 2, "max_steps_per_epoch": None}, output=str(run), lr=3e-3)
    return run


def _listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"<dir>") for p in folder.rglob("*")}


# -- 1. a refused run deletes nothing ---------------------------------------------------------------------------
def test_a_refused_run_deletes_none_of_the_users_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    user = tmp_path / "user"
    (user / "thesis" / ".resume-notes").mkdir(parents=True)
    (user / "thesis" / "ch1.txt").write_text("chapter one")
    (user / "thesis" / ".resume-notes" / "todo.txt").write_text("todo")
    (user / ".thesis.old-backup").mkdir()
    (user / ".thesis.old-backup" / "draft.txt").write_text("draft")
    (user / ".thesis.old-7").mkdir()  # zoo's pattern, but not zoo's folder: no marker
    (user / ".thesis.old-7" / "notes.txt").write_text("mine")
    (user / ".thesis.lock").write_text("my lock")
    before = _listing(user)
    result = runner.invoke(app, ["finetune", "example_tinynet", "--data", "example_shapes", "-o", "user/thesis",
                                 "--epochs", "1"])
    assert result.exit_code == 1 and "zoo will not write into it" in result.output
    assert _listing(user) == before


def test_a_user_file_with_the_lock_files_name_is_refused_and_kept(tmp_path):
    (tmp_path / ".run.zoo-lock").write_text("my notes")
    with pytest.raises(ZooError, match="is not a zoo lock file"):
        zoo.finetune(**SHAPES, output=str(tmp_path / "run"))
    assert (tmp_path / ".run.zoo-lock").read_text() == "my notes"


def test_leftovers_of_a_killed_run_are_still_cleaned(tmp_path):
    run = tmp_path / "run"
    zoo.finetune(**SHAPES, output=str(run))
    staging = tmp_path / ".run.staging-99999"  # what a run killed in its first epoch leaves
    staging.mkdir()
    (staging / ".zoo-run").write_text("{}")
    half_resume = run / ".resume-abcd1234"
    half_resume.mkdir()
    (half_resume / "state.pt").write_bytes(b"half")
    zoo.finetune(resume=str(run), quiet=True, workers=0, epochs=2, max_steps_per_epoch=2)
    assert not staging.exists() and not half_resume.exists()


# -- 2. eval and export write only into folders zoo made --------------------------------------------------------
@pytest.mark.parametrize("command", ["eval", "export"])
def test_eval_and_export_never_overwrite_a_users_folder(shapes_run, tmp_path, command):
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in ("metrics.json", "mistakes.html", "model.onnx", "model.json"):
        (mine / name).write_text(f"my {name}")
    before = _listing(mine)
    result = runner.invoke(app, [command, str(shapes_run), "-o", str(mine)])
    assert result.exit_code == 1, result.output
    assert "zoo did not make and it is not empty" in result.output and result.output.count("\n") == 1
    assert _listing(mine) == before
    # into an empty folder, and again into the folder it made: fine
    (tmp_path / "empty").mkdir()
    for _ in range(2):
        result = runner.invoke(app, [command, str(shapes_run), "-o", str(tmp_path / "empty")])
        assert result.exit_code == 0, result.output
    assert (tmp_path / "empty" / f".zoo-{command}").is_file()


def test_eval_into_a_file_is_one_line(shapes_run, tmp_path):
    target = tmp_path / "report.txt"
    target.write_text("mine")
    result = runner.invoke(app, ["eval", str(shapes_run), "-o", str(target)])
    assert result.exit_code == 1 and "is a file, not a folder" in result.output and target.read_text() == "mine"


# -- 3. exports are transactional --------------------------------------------------------------------------------
def _check_export_folder(folder: Path, leftovers_allowed: bool = False) -> dict:
    """model.json lists exactly the files beside it, each with its true SHA-256 (and, unless a kill just
    happened, nothing of zoo's is left beside the folder)."""
    from zoo.hub import file_digest

    model_json = json.loads((folder / "model.json").read_text())
    listed = {name: digest for record in model_json["files"].values() for name, digest in record["files"].items()}
    present = {p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}
    assert present == set(listed) | {"model.json", "parity.json"}, (present, listed)
    for name, digest in listed.items():
        assert file_digest(folder / name) == digest, name
    if not leftovers_allowed:
        assert not [p for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}.")]  # no staging left
    return model_json


def test_an_export_into_another_runs_export_replaces_it_whole(shapes_run, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(shapes_run, other)
    # the other run: other classes, so a mixed folder would be visible
    meta = json.loads((other / "best.json").read_text())
    meta["classes"] = ["a", "b", "c"]
    (other / "best.json").write_text(json.dumps(meta))
    from safetensors.torch import load_file, save_file

    weights = load_file(str(other / "best.safetensors"))
    save_file({k: v + 0.01 if v.is_floating_point() else v for k, v in weights.items()},
              str(other / "best.safetensors"), metadata={"format": "pt"})
    out = tmp_path / "export"
    zoo.export(shapes_run, format="onnx,torchscript", output=out)
    zoo.export(other, format="onnx", output=out)
    model_json = _check_export_folder(out)
    assert set(model_json["files"]) == {"onnx"} and model_json["classes"] == ["a", "b", "c"]
    assert not (out / "model.pt").exists()  # the first run's TorchScript went with its records


def test_a_second_export_of_the_same_checkpoint_keeps_the_first_formats(shapes_run, tmp_path):
    out = tmp_path / "export"
    zoo.export(shapes_run, format="onnx", output=out)
    zoo.export(shapes_run, format="torchscript", output=out)
    zoo.export(shapes_run, format="onnx", output=out, embed_preprocessing=True)
    model_json = _check_export_folder(out)
    assert set(model_json["files"]) == {"onnx", "torchscript", "onnx (model.onnx)"}
    assert model_json["files"]["onnx"]["path"] == "model-uint8.onnx"
    # each file says what it takes (one export mixes uint8 images and float tensors)
    assert model_json["files"]["onnx"]["input"].startswith("uint8 (N, H, W, 3)")
    assert model_json["files"]["torchscript"]["input"].startswith("float32 (N, 3,")
    assert "input" not in model_json
    parity = json.loads((out / "parity.json").read_text())
    assert set(parity) == set(model_json["files"])
    image = tmp_path / "a.png"
    Image.fromarray(np.full((24, 24, 3), 200, np.uint8)).save(image)
    kept, new = (zoo.predict(out / name, [str(image)], top_k=1)[0]["top"][0] for name in ("model.pt", "model.onnx"))
    assert kept["label"] == new["label"] and abs(kept["prob"] - new["prob"]) < 1e-4


LOCK_HOLDER = """
import sys, time
from zoo.outputs import exclusive_lock
from pathlib import Path
out = Path(sys.argv[1])
with exclusive_lock(out.parent / f".{out.name}.zoo-lock", "export folder"):
    print("locked", flush=True)
    time.sleep(30)
"""


def test_two_exports_at_once_the_second_is_refused(shapes_run, tmp_path):
    out = tmp_path / "export"
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(out)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = runner.invoke(app, ["export", str(shapes_run), "-o", str(out)])
        assert result.exit_code == 1 and f"in use by another zoo process (pid {holder.pid})" in result.output
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()


# -- 15. every file a format writes is hashed and checked on load -----------------------------------------------
def test_a_changed_export_file_is_refused_naming_it(shapes_run, tmp_path):
    out = tmp_path / "export"
    zoo.export(shapes_run, format="onnx", output=out)
    image = tmp_path / "a.png"
    Image.fromarray(np.full((24, 24, 3), 200, np.uint8)).save(image)
    assert runner.invoke(app, ["predict", str(out / "model.onnx"), str(image)]).exit_code == 0
    data = bytearray((out / "model.onnx").read_bytes())
    data[-200] ^= 0xFF  # same size, other bytes: a weight changed
    (out / "model.onnx").write_bytes(bytes(data))
    result = runner.invoke(app, ["predict", str(out / "model.onnx"), str(image)])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "does not match the SHA-256 that model.json records" in result.output and "model.onnx" in result.output


def test_openvino_records_and_checks_its_bin_file(shapes_run, tmp_path):
    pytest.importorskip("openvino", reason="the zoo-openvino plugin's openvino is not installed")
    out = tmp_path / "export"
    zoo.export(shapes_run, format="openvino", output=out)
    record = json.loads((out / "model.json").read_text())["files"]["openvino"]
    assert set(record["files"]) == {"model.xml", "model.bin"}
    data = bytearray((out / "model.bin").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (out / "model.bin").write_bytes(bytes(data))
    with pytest.raises(ZooError, match=r"model\.bin does not match the SHA-256"):
        zoo.predict(out / "model.xml", [str(ROOT / "tests")], top_k=1)


# -- 4. caches know when a file changed -------------------------------------------------------------------------
def _bmp(path: Path, value: int) -> None:
    Image.fromarray(np.full((40, 40, 3), value, np.uint8)).save(path, format="BMP")  # same size for any pixels


def _same_size_rewrite(path: Path, value: int) -> None:
    """Other bytes of the same size, with the old modification time put back (`touch -r`)."""
    stat = path.stat()
    size = stat.st_size
    time.sleep(0.01)
    _bmp(path, value)
    assert path.stat().st_size == size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_a_disk_cache_is_made_again_when_a_file_changes_behind_an_old_mtime(tmp_path):
    from zoo.data.dataset import FileImages
    from zoo.data.decoded_cache import CacheSpec, decode_once_to_disk

    files = [tmp_path / f"{i}.bmp" for i in range(3)]
    for i, f in enumerate(files):
        _bmp(f, 10 * i)
    source = FileImages([str(f) for f in files], np.zeros(3, dtype=np.int64))
    spec = CacheSpec(16, 16)
    first = decode_once_to_disk(source, spec, tmp_path / "cache")
    assert int(first.images[1].mean()) == 10
    _same_size_rewrite(files[1], 250)
    second = decode_once_to_disk(source, spec, tmp_path / "cache")
    assert int(second.images[1].mean()) == 250  # the new pixels, not the cached old ones


def test_a_remembered_scan_notices_a_same_size_corrupted_file(tmp_path, caplog):
    from zoo.data.scan_record import scan_remembered

    files = [tmp_path / f"{i}.bmp" for i in range(3)]
    for i, f in enumerate(files):
        _bmp(f, 10 * i)
    assert len(scan_remembered([str(f) for f in files]).good) == 3
    stat = files[2].stat()
    files[2].write_bytes(b"\0" * stat.st_size)  # broken, same size, old mtime
    os.utime(files[2], ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with caplog.at_level("WARNING", logger="zoo"):
        result = scan_remembered([str(f) for f in files])
    assert result.good == [0, 1] and result.bad[0][0] == str(files[2])


def test_a_file_broken_after_the_check_is_named_by_the_memory_cache(tmp_path):
    from zoo.data.dataset import FileImages
    from zoo.data.decoded_cache import CacheSpec, decode_once

    files = [tmp_path / f"{i}.bmp" for i in range(2)]
    for i, f in enumerate(files):
        _bmp(f, 10 * i)
    files[1].write_bytes(b"not an image any more")
    with pytest.raises(DataError, match=rf"image {files[1]} can no longer be read"):
        decode_once(FileImages([str(f) for f in files], np.zeros(2, dtype=np.int64)), CacheSpec(16, 16))


# -- 5. clearing the cache leaves caches in use alone -----------------------------------------------------------
CACHE_READER = """
import sys, time
import numpy as np
from zoo.data.dataset import FileImages
from zoo.data.decoded_cache import CacheSpec, decode_once_to_disk
files = sys.argv[1:]
images = decode_once_to_disk(FileImages(files, np.zeros(len(files), dtype=np.int64)), CacheSpec(16, 16))
print("reading", flush=True)
time.sleep(3)
print(int(np.asarray(images.images).sum() > 0), flush=True)
"""


def test_cache_clear_skips_a_decoded_cache_a_run_is_reading(tmp_path):
    files = [tmp_path / f"{i}.bmp" for i in range(3)]
    for i, f in enumerate(files):
        _bmp(f, 10 * i + 5)
    reader = subprocess.Popen([sys.executable, "-c", CACHE_READER, *map(str, files)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert reader.stdout.readline().strip() == "reading", reader.stderr.read()
    from zoo.hub import cache_dir

    stale = cache_dir("decoded") / "0123.npy"  # a cache nobody uses: cleared
    stale.write_bytes(b"x" * 1000)
    result = runner.invoke(app, ["cache", "clear", "decoded", "--yes"])
    assert result.exit_code == 0, result.output
    assert "freed 1.0 KB" in result.output or "freed 1000 B" in result.output or "freed" in result.output
    assert "kept 1 file(s) a running zoo process is using" in result.output
    assert not stale.exists() and len(list(cache_dir("decoded").glob("*.npy"))) == 1
    assert reader.wait(timeout=30) == 0 and reader.stdout.read().strip() == "1"


# -- 6. runs started in the same second get a name each ---------------------------------------------------------
CLAIMER = """
import sys, time
from contextlib import ExitStack
from pathlib import Path
from zoo.runs import claim_new_run
with ExitStack() as stack:
    run = claim_new_run("example_tinynet", "example_shapes", stack, root=Path(sys.argv[1]))
    print(run.name, flush=True)
    time.sleep(2)
"""


def test_runs_started_in_the_same_second_each_get_their_own_name(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, str(tmp_path / "runs")], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
             for _ in range(6)]
    names = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs), [p.stderr.read() for p in procs if p.stderr]
    assert len(set(names)) == 6, names


# -- 7. latest, `-o .`, failed runs, Ctrl-C ---------------------------------------------------------------------
def test_a_users_own_latest_link_is_left_alone(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "latest").symlink_to(tmp_path / "mine")
    with caplog.at_level("WARNING", logger="zoo"):
        zoo.finetune(**SHAPES)
    assert os.readlink(tmp_path / "runs" / "latest") == str(tmp_path / "mine")
    assert any("not updating" in r.getMessage() for r in caplog.records)
    os.unlink(tmp_path / "runs" / "latest")  # a link zoo made is moved on to the newest run
    zoo.finetune(**SHAPES)
    first = Path(os.readlink(tmp_path / "runs" / "latest"))
    zoo.finetune(**SHAPES)
    assert Path(os.readlink(tmp_path / "runs" / "latest")) != first


def test_output_dot_in_an_empty_folder_trains_there(tmp_path, monkeypatch):
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    zoo.finetune(**SHAPES, output=".")
    assert (here / ".zoo-run").is_file() and (here / "last.safetensors").is_file()
    assert os.getcwd() == str(here) and Path(".").resolve() == here  # the working folder itself stayed


def test_a_failed_run_leaves_no_empty_folders(tmp_path):
    with pytest.raises(ZooError):
        zoo.finetune(**{**SHAPES, "data": str(tmp_path / "no-such-data")}, output=str(tmp_path / "a" / "b" / "run"))
    with pytest.raises(ZooError):
        zoo.finetune(**SHAPES, output=str(tmp_path / "c" / "d" / "run"), weights=str(tmp_path / "none.pt"))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("stop_in_epoch", [1, 2])
def test_ctrl_c_says_what_was_kept(tmp_path, monkeypatch, stop_in_epoch):
    from zoo.engine import loop

    original, calls = loop.train_one_epoch, []

    def interrupted(t, epoch):
        calls.append(epoch)
        if len(calls) == stop_in_epoch:
            raise KeyboardInterrupt
        return original(t, epoch)

    monkeypatch.setattr(loop, "train_one_epoch", interrupted)
    run = tmp_path / "run"
    result = runner.invoke(app, ["finetune", "example_tinynet", "--data", "example_shapes", "--epochs", "3",
                                 "--max-steps-per-epoch", "2", "-o", str(run), "--workers", "0"])
    assert result.exit_code == 130
    if stop_in_epoch == 1:
        assert "before the first epoch finished; nothing was kept" in result.output and not run.exists()
    else:
        assert f"run {run} keeps epoch 1 (zoo finetune --resume {run} goes on)" in result.output
        assert json.loads((run / "last.json").read_text())["epoch"] == 1


# -- 8. bounded: memory estimated before allocating, repeated warnings summarised -------------------------------
def test_a_huge_image_size_is_refused_before_anything_big_is_allocated():
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = runner.invoke(app, ["finetune", "resnet18", "--data", "example_shapes", "--image-size", "4096",
                                 "--batch-size", "64", "--dry-run"])
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "training at 4096 px needs about" in result.output and "GB free on cpu; use --batch-size" in result.output
    assert grown_mb < 500, grown_mb  # a real 4096 px forward takes gigabytes


def test_the_dry_run_states_the_memory_estimate():
    plan = zoo.finetune(model="example_tinynet", data="example_shapes", batch_size=8, dry_run=True)
    assert plan.memory.startswith("about ") and "at batch 8" in plan.memory


def test_many_unreadable_files_are_one_summary_not_a_line_each(tmp_path, caplog):
    for c in ("a", "b"):
        (tmp_path / "data" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((16, 16, 3), 60 * i, np.uint8)).save(tmp_path / "data" / c / f"{i}.png")
        for i in range(20):
            (tmp_path / "data" / c / f"empty{i}.jpg").write_bytes(b"")
    with caplog.at_level("WARNING", logger="zoo"):
        zoo.create_dataset(str(tmp_path / "data"))
    skips = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipping ")]
    assert len(skips) == 10
    assert any("... and 30 more unreadable files skipped" in r.getMessage() for r in caplog.records)


def test_huge_photos_are_decoded_one_at_a_time():
    import threading

    from zoo.inference import PixelBudget

    budget, now, peak, lock = PixelBudget(100), [0], [0], threading.Lock()

    def work(pixels):
        with budget.hold(pixels):
            with lock:
                now[0] += pixels
                peak[0] = max(peak[0], now[0])
            time.sleep(0.02)
            with lock:
                now[0] -= pixels

    threads = [threading.Thread(target=work, args=(p,)) for p in (90, 90, 90, 5, 5, 100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] <= 100


# -- 9. one line for every bad input -----------------------------------------------------------------------------
def _one_line(result, code=1, *parts):
    assert result.exit_code == code, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    assert "unexpected" not in result.output and len(result.output) < 1200, result.output[:300]
    for part in parts:
        assert part in result.output, result.output


def test_bad_list_and_jsonl_lines_are_one_line_each(tmp_path):
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    cases = {"nul.txt": "a\0.png 0\n", "sup.txt": "a.png \u00b2\n", "circ.txt": "a.png \u2460\n"}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        _one_line(runner.invoke(app, ["data", "check", str(tmp_path / name)]), 1, name)
    (tmp_path / "nul.jsonl").write_text(json.dumps({"path": "a\0.png", "label": "x"}) + "\n")
    _one_line(runner.invoke(app, ["data", "check", str(tmp_path / "nul.jsonl")]), 1, "NUL byte")
    (tmp_path / "deep.jsonl").write_text("[" * 5000 + "]" * 5000 + "\n")
    _one_line(runner.invoke(app, ["data", "check", str(tmp_path / "deep.jsonl")]), 1, "deep.jsonl")


@pytest.mark.parametrize("text, says", [
    ("train = 5\n", "[train] must be a table"),
    ('device = "cuda:0\\n"\n', "--device"),
    ("lr = 1e300\n", "--lr 1e+300 is out of range"),
])
def test_bad_config_files_are_one_line(tmp_path, text, says):
    config = tmp_path / "run.toml"
    config.write_text(text)
    _one_line(runner.invoke(app, ["finetune", "example_tinynet", "--data", "example_shapes", "--config",
                                  str(config), "--dry-run"]), 1, says)


def test_a_config_nested_thousands_deep_is_one_line(tmp_path):
    config = tmp_path / "run.json"
    config.write_text("[" * 5000 + "]" * 5000)
    _one_line(runner.invoke(app, ["finetune", "example_tinynet", "--data", "example_shapes", "--config",
                                  str(config), "--dry-run"]), 1, "nested too deeply")


def test_a_huge_lr_or_model_name_is_one_short_line():
    _one_line(runner.invoke(app, ["finetune", "example_tinynet", "--data", "example_shapes", "--lr", "1e300",
                                  "--dry-run"]), 1, "--lr")
    _one_line(runner.invoke(app, ["finetune", "x" * 5_000_000, "--data", "example_shapes", "--dry-run"]), 1,
              "characters left out")


def test_predict_output_at_a_folder_is_refused_before_reading_images(shapes_run, tmp_path):
    _one_line(runner.invoke(app, ["predict", str(shapes_run), str(tmp_path), "-o", str(tmp_path)]), 1, "is a folder")


def test_a_dataset_with_labels_beyond_its_classes_is_one_line():
    images = np.zeros((4, 8, 8, 3), np.uint8)
    with pytest.raises(DataError, match=r"has label 7, but its 2 classes take labels 0\.\.1"):
        zoo.ImageDataset.from_arrays("plugin-data", ["a", "b"], (images, [0, 1, 7, 0]), (images, [0, 1, 0, 1]))


def test_class_names_with_plot_markup_train_and_evaluate(tmp_path):
    for c, name in enumerate(["$\\frac{x$", "plain"]):
        for i in range(6):
            folder = tmp_path / "data" / name
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((16, 16, 3), 40 + 150 * c + i, np.uint8)).save(folder / f"{i}.png")
    run = tmp_path / "run"
    zoo.finetune(model="example_tinynet", data=str(tmp_path / "data"), epochs=1, batch_size=4, quiet=True,
                 workers=0, output=str(run))
    assert (run / "confusion_matrix.png").is_file()
    report = zoo.evaluate(run, output=tmp_path / "eval", progress=False)
    assert (tmp_path / "eval" / "confusion_matrix.png").is_file() and report.images > 0


def test_a_plugin_raising_a_base_exception_is_reported_not_fatal(tmp_path, monkeypatch, fresh_registry):
    from tests.plugin_factory import make_plugin

    make_plugin(tmp_path, "zoo-rude", """
        class Rude(BaseException):
            pass

        def register(ctx):
            raise Rude("no")
    """, {"zoo.models": "rude = MODULE:register"})
    monkeypatch.syspath_prepend(str(tmp_path))
    result = runner.invoke(app, ["plugins"])
    assert result.exit_code == 0 and "Rude: no" in result.output


# -- 10. nothing in an output runs as code -----------------------------------------------------------------------
def test_predictions_csv_and_terminal_output_are_inert(shapes_run, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    names = ["=cmd.png", "+x.png", "-y.png", "@z.png", "\x1b]0;TITLE\x07.png"]
    for name in names:
        Image.fromarray(np.full((24, 24, 3), 200, np.uint8)).save(folder / name)
    out = tmp_path / "p.csv"
    result = runner.invoke(app, ["predict", str(shapes_run), *[str(folder / n) for n in names], "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\\x1b]0;TITLE\\x07" in result.output
    import csv

    rows = list(csv.reader(out.open()))[1:]
    for row in rows:
        assert all(not cell.startswith(("=", "+", "-", "@")) for cell in row), row


# -- 11. metadata is checked before use --------------------------------------------------------------------------
def test_a_checkpoint_with_nan_in_its_mean_is_refused(shapes_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(shapes_run, run)
    meta = json.loads((run / "best.json").read_text())
    meta["preprocessing"]["mean"] = [float("nan"), 0.5, 0.5]
    (run / "best.json").write_text(json.dumps(meta))
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((24, 24, 3), np.uint8)).save(image)
    _one_line(runner.invoke(app, ["predict", str(run / "best.safetensors"), str(image)]), 1,
              "mean [nan, 0.5, 0.5] must be three finite numbers")


# -- 16, 17, 19, 20, 21: exports that read the same everywhere ----------------------------------------------------
def test_static_exports_are_what_they_say(shapes_run, tmp_path):
    result = runner.invoke(app, ["export", str(shapes_run), "--format", "pt2,torchscript,onnx", "--static",
                                 "--batch-size", "4", "-o", str(tmp_path / "e")])
    assert result.exit_code == 0, result.output
    files = json.loads((tmp_path / "e" / "model.json").read_text())["files"]
    assert files["pt2"]["dynamic_batch"] is False and files["pt2"]["input"] == "float32 (4, 3, 32, 32)"
    assert files["onnx"]["input"] == "float32 (4, 3, 32, 32)"
    assert files["torchscript"]["dynamic_batch"] is True  # a trace takes any batch: recorded as it is
    parity = json.loads((tmp_path / "e" / "parity.json").read_text())
    assert parity["pt2"]["passed"] and parity["pt2"]["batch_sizes"] == [1, 4]


@pytest.mark.parametrize("opset, ir", [(13, 7), (17, 8), (18, 8)])
def test_the_opset_asked_for_is_written_in_the_lowest_ir_version(shapes_run, tmp_path, opset, ir):
    import onnx

    zoo.export(shapes_run, format="onnx", opset=opset, output=tmp_path / "e")
    proto = onnx.load(str(tmp_path / "e" / "model.onnx"))
    assert [(o.domain, o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [("", opset)]
    assert proto.ir_version == ir  # onnxruntime 1.17 reads IR <= 9 (checked by hand in a separate venv)


def test_an_opset_a_format_cannot_use_is_one_line(shapes_run, tmp_path):
    result = runner.invoke(app, ["export", str(shapes_run), "--format", "onnx-int8", "--opset", "11", "-o",
                                 str(tmp_path / "e")])
    assert result.exit_code == 1 and result.output.splitlines()[-1].startswith(
        "error: --opset 11: int8 with per-channel weights needs ONNX opset 13")
    assert not (tmp_path / "e").exists()


def test_no_export_file_holds_a_path_of_this_machine(shapes_run, tmp_path):
    import re

    zoo.export(shapes_run, format="all", output=tmp_path / "e", strict=False)
    zoo.export(shapes_run, format="onnx,onnx-int8", output=tmp_path / "u", embed_preprocessing=True, strict=False)
    machine = [str(ROOT), str(tmp_path), "site-packages", "/tmp/", ".staging-", ".model."]
    for path in [*(tmp_path / "e").iterdir(), *(tmp_path / "u").iterdir()]:
        data = path.read_bytes()
        found = [m for m in machine if m.encode() in data]
        assert not found, (path.name, found)
        assert not re.search(rb"/(home|root|usr|work)/[\w.-]+/", data), path.name


def test_int8_is_portable_declares_only_used_domains_and_gates_on_many_images(shapes_run, tmp_path):
    import onnx

    zoo.export(shapes_run, format="onnx-int8", output=tmp_path / "e", strict=False)
    proto = onnx.load(str(tmp_path / "e" / "model-int8.onnx"))
    assert {o.domain for o in proto.opset_import} <= {"", "ai.onnx"}, list(proto.opset_import)
    record = json.loads((tmp_path / "e" / "model.json").read_text())["files"]["onnx-int8"]
    assert "reduce_range" in record["quantization"] and "without VNNI" in record["quantization"]
    parity = json.loads((tmp_path / "e" / "parity.json").read_text())["onnx-int8"]
    assert parity["images"] == 72  # the whole validation split, not 32 images
    assert 0 < parity["top1_agreement_lower_bound"] <= parity["top1_agreement"]
    small = runner.invoke(app, ["export", str(shapes_run), "--format", "onnx", "--parity-images", "10",
                                "-o", str(tmp_path / "s")])
    assert small.exit_code == 0 and json.loads((tmp_path / "s" / "parity.json").read_text())["onnx"]["images"] == 10


def test_consumer_metadata_states_the_pixel_limit(shapes_run, tmp_path):
    zoo.export(shapes_run, format="onnx", output=tmp_path / "e")
    decoding = json.loads((tmp_path / "e" / "model.json").read_text())["decoding"]
    assert decoding["max_pixels"].startswith("64000000")


def test_a_truncated_pt2_is_one_line_without_torch_tracebacks(shapes_run, tmp_path):
    zoo.export(shapes_run, format="pt2", output=tmp_path / "e")
    broken = tmp_path / "broken.pt2"
    broken.write_bytes((tmp_path / "e" / "model.pt2").read_bytes()[:3000])
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((24, 24, 3), np.uint8)).save(image)
    _one_line(runner.invoke(app, ["predict", str(broken), str(image)]), 1, "not a readable pt2 export")


def test_eval_says_why_there_is_no_confusion_png(shapes_run, tmp_path, monkeypatch):
    from zoo.engine import metrics

    monkeypatch.setattr(metrics, "_pyplot", lambda: None)
    result = runner.invoke(app, ["eval", str(shapes_run), "-o", str(tmp_path / "r"), "-q"])
    assert result.exit_code == 0, result.output
    assert "confusion_matrix.png" not in result.output.split("report:")[1].splitlines()[0]
    assert "plots need matplotlib" in result.output


# -- 12, 13: plugins ---------------------------------------------------------------------------------------------
def _zoo_with(site, cache, *args):
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{ROOT}", "ZOO_CACHE": str(cache)}
    return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True, env=env, timeout=60)


def test_a_plugin_thread_that_never_ends_does_not_hang_a_command(tmp_path):
    from tests.plugin_factory import make_plugin

    make_plugin(tmp_path / "site", "zoo-threads", """
        import threading, time

        def register(ctx):
            threading.Thread(target=time.sleep, args=(3600,)).start()  # non-daemon, forever
            ctx.add_model("threaded_net", "zoo.models.resnet:build_resnet", factory_kwargs={"variant": "resnet18"})
    """, {"zoo.models": "threads = MODULE:register"})
    started = time.perf_counter()
    done = _zoo_with(tmp_path / "site", tmp_path / "cache", "plugins")
    assert done.returncode == 0 and "threaded_net" in done.stdout and time.perf_counter() - started < 50


def test_the_plugin_cache_sees_a_changed_helper_module_of_the_same_size_and_mtime(tmp_path):
    site = tmp_path / "site"
    package = site / "zoo_pkgplug"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from zoo_pkgplug.names import NAME\n\ndef register(ctx):\n"
                                         "    ctx.add_model(NAME, 'zoo.models.resnet:build_resnet', "
                                         "factory_kwargs={'variant': 'resnet18'})\n")
    helper = package / "names.py"
    helper.write_text('NAME = "pkgnet_aa"\n')
    info = site / "zoo_pkgplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zoo-pkgplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[zoo.models]\npkgplug = zoo_pkgplug:register\n")
    assert "pkgnet_aa" in _zoo_with(site, tmp_path / "cache", "list", "pkgnet*").stdout
    assert "pkgnet_aa" in _zoo_with(site, tmp_path / "cache", "list", "pkgnet*").stdout  # from the cache
    stat = helper.stat()
    time.sleep(0.01)
    helper.write_text('NAME = "pkgnet_bb"\n')  # same size
    os.utime(helper, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the old modification time
    assert "pkgnet_bb" in _zoo_with(site, tmp_path / "cache", "list", "pkgnet*").stdout


def test_records_of_uninstalled_plugins_are_pruned(tmp_path):
    from tests.plugin_factory import make_plugin

    for name in ("zoo-gone", "zoo-stays"):
        make_plugin(tmp_path / "site", name, f"""
            def register(ctx):
                ctx.add_model("{name.replace('-', '_')}_net", "zoo.models.resnet:build_resnet",
                              factory_kwargs={{"variant": "resnet18"}})
        """, {"zoo.models": f"{name} = MODULE:register"})
    cache = tmp_path / "cache"
    _zoo_with(tmp_path / "site", cache, "list")
    record = json.loads((cache / "plugins" / "registrations.json").read_text())
    assert any("zoo-gone" in key for key in record)
    shutil.rmtree(tmp_path / "site" / "zoo_gone-0.1.dist-info")
    (tmp_path / "site" / "zoo_stays_mod.py").write_text((tmp_path / "site" / "zoo_stays_mod.py").read_text() + "\n")
    _zoo_with(tmp_path / "site", cache, "list")  # the changed plugin is recorded again; the gone one pruned
    record = json.loads((cache / "plugins" / "registrations.json").read_text())
    assert not any("zoo-gone" in key for key in record) and any("zoo-stays" in key for key in record)


# -- 14: the embedded-preprocessing ONNX reads the same in every runtime ------------------------------------------
@pytest.mark.parametrize("height, resized", [(375, 256), (97, 256), (2000, 40), (40, 232), (500, 500), (4000, 232)])
def test_the_matrix_resize_is_torchvisions_antialiased_bilinear(height, resized):
    import torch

    from zoo.exporter.embedded import resize_weights

    x = torch.rand(1, 3, height, 5) * 255
    reference = torch.nn.functional.interpolate(x, size=(resized, 5), mode="bilinear", antialias=True,
                                                align_corners=False)
    torch.testing.assert_close(resize_weights(height, resized, 0, resized) @ x, reference, atol=2e-4, rtol=0)


def test_the_embedded_onnx_reads_the_same_in_openvino(tmp_path):
    pytest.importorskip("openvino", reason="openvino is not installed (make test installs the zoo-openvino plugin)")
    photos = shared_data("hymenoptera")
    run = tmp_path / "ants"
    zoo.finetune(model="example_tinynet", data=str(photos), epochs=2, lr=3e-3, batch_size=32, output=str(run),
                 quiet=True, workers=0)
    panorama = tmp_path / "panorama"
    panorama.mkdir()
    shutil.copy(shared_data("bad_inputs") / "panorama_2000x40.jpg", panorama / "panorama.jpg")
    for i, photo in enumerate(sorted((photos / "val" / "bees").glob("*.jpg"))[:20]):
        shutil.copy(photo, panorama / f"{i}.jpg")
    zoo.export(run, format="onnx", output=tmp_path / "e", embed_preprocessing=True, images=panorama)
    report = json.loads((tmp_path / "e" / "parity.json").read_text())["onnx"]
    assert report["passed"] and len(report["runtimes"]) == 2 and report["runtimes"][1].startswith("openvino")
    openvino = next(iter(report["other_runtimes"].values()))
    assert openvino["passed"] and openvino["top1_agreement"] == 1.0 and openvino["max_prob_diff"] <= 1e-3


@pytest.mark.slow
def test_the_demo_exports_every_format_on_the_embedded_set(tmp_path):
    """`make demo`'s own commands (the README's first), export included, as any CPU class runs them."""
    run = tmp_path / "demo-digits"
    trained = runner.invoke(app, ["-q", "finetune", "resnet18_cifar", "--data", "digits", "--epochs", "3",
                                  "--batch-size", "64", "--output", str(run), "--overwrite", "--workers", "0"])
    assert trained.exit_code == 0, trained.output
    exported = runner.invoke(app, ["export", str(run), "--format", "all", "-o", str(tmp_path / "export")])
    assert exported.exit_code == 0, exported.output
    parity = json.loads((tmp_path / "export" / "parity.json").read_text())
    assert {"onnx", "onnx-int8", "pt2", "torchscript"} <= set(parity) and all(r["passed"] for r in parity.values())
    assert parity["onnx-int8"]["images"] == 360 or parity["onnx-int8"]["images"] >= 300  # the whole digits val split
