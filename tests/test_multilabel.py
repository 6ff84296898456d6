"""Multi-label data end to end: the CSV and JSON Lines layouts, the task, BCE training on food20-multilabel
with mAP above the label-frequency baseline, eval, predict, every export's gate, the numpy consumer and serve."""

import json
import subprocess
import sys

import numpy as np
import pytest

import zoo
from tests.conftest import ROOT, shared_data, write_image
from zoo import multilabel
from zoo.data.dataset import MULTI_LABEL, SINGLE_LABEL, ImageDataset
from zoo.errors import DataError, TrainingError


def _cli(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "zoo", *argv], capture_output=True, text=True, cwd=ROOT)
    if check and done.returncode:
        pytest.fail(f"zoo {' '.join(argv)} exited {done.returncode}: {done.stderr[-1500:]}")
    return done


# -- scores ------------------------------------------------------------------------------------------------------
def test_average_precision_of_a_known_ranking():
    # positives ranked 1st and 3rd: precision 1/1 and 2/3 at them
    assert multilabel.average_precision(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 1, 0])) == pytest.approx(5 / 6)
    assert multilabel.average_precision(np.array([0.5, 0.5]), np.array([1, 0])) == pytest.approx(0.5)  # a tie: both
    assert multilabel.average_precision(np.array([0.3, 0.1]), np.array([0, 0])) is None


def test_scores_at_a_threshold_and_tuned_thresholds():
    probs = np.array([[0.9, 0.2], [0.6, 0.7], [0.4, 0.1], [0.1, 0.8]])
    truth = np.array([[1, 0], [1, 1], [1, 0], [0, 1]])
    at = multilabel.scores_at(probs, truth, 0.5)
    assert (at["tp"], at["fp"], at["fn"]) == ([2, 2], [0, 0], [1, 0])
    assert at["exact_match"] == pytest.approx(0.75)  # the third image misses class 0
    assert at["micro_f1"] == pytest.approx(2 * 4 / (2 * 4 + 0 + 1))
    tuned = multilabel.tune_thresholds(probs, truth)
    assert 0.1 < tuned[0] <= 0.4  # class 0's third positive (0.4) is caught, its negative (0.1) is not
    assert multilabel.scores_at(probs, truth, tuned)["macro_f1"] == pytest.approx(1.0)


# -- layouts and the task ---------------------------------------------------------------------------------------
def test_food20_multilabel_reads_as_multi_hot_rows():
    dataset = zoo.create_dataset(str(shared_data("food20-multilabel")))
    assert (dataset.layout, dataset.task, dataset.num_classes) == ("csv", MULTI_LABEL, 20)
    assert (len(dataset.train), len(dataset.eval)) == (3000, 600)
    per_image = dataset.train.labels.sum(1)
    assert dataset.train.labels.shape == (3000, 20) and per_image.min() == 1 and per_image.max() == 4
    first = (shared_data("food20-multilabel") / "train.csv").read_text().splitlines()[1].split(",")[1].split()
    assert sorted(np.asarray(dataset.classes)[dataset.train.labels[0] == 1]) == sorted(first)
    assert sum(dataset.counts()["train"]) == per_image.sum()  # an image counts for each of its classes


def _csv_folder(tmp_path, train_rows, val_rows, classes=None):
    for i in range(4):
        write_image(tmp_path / "img" / f"{i}.png", (60 * i, 80, 120), seed=i)
    (tmp_path / "train.csv").write_text("file,labels\n" + "".join(f"img/{f},{labels}\n" for f, labels in train_rows))
    (tmp_path / "val.csv").write_text("file,labels\n" + "".join(f"img/{f},{labels}\n" for f, labels in val_rows))
    if classes:
        (tmp_path / "classes.txt").write_text("\n".join(classes) + "\n")
    return tmp_path


def test_a_csv_class_missing_from_classes_txt_is_one_line_naming_the_line(tmp_path):
    folder = _csv_folder(tmp_path, [("0.png", "cat dog"), ("1.png", "cat")], [("2.png", "dgo")], ["cat", "dog"])
    with pytest.raises(DataError, match=r"val\.csv:2: class 'dgo' is not in .*classes\.txt"):
        zoo.create_dataset(str(folder))


def test_a_csv_without_the_header_is_refused(tmp_path):
    folder = _csv_folder(tmp_path, [("0.png", "cat")], [("1.png", "cat")])
    (folder / "train.csv").write_text("img/0.png,cat\n")
    with pytest.raises(DataError, match=r"train\.csv:1: expected a header .*'file,labels'"):
        zoo.create_dataset(str(folder))


def test_a_csv_of_single_labels_is_single_label_data(tmp_path):
    folder = _csv_folder(tmp_path, [("0.png", "cat"), ("1.png", "dog")], [("2.png", "dog"), ("3.png", "cat")])
    dataset = zoo.create_dataset(str(folder))
    assert dataset.task == MULTI_LABEL  # as read: rows
    single = dataset.with_task("auto")
    assert single.task == SINGLE_LABEL and single.train.labels.tolist() == [0, 1]
    assert dataset.with_task("multi").train.labels.tolist() == [[1, 0], [0, 1]]


def test_jsonl_labels_lists_and_task_single_refuses_several_labels(tmp_path):
    for i in range(3):
        write_image(tmp_path / f"{i}.png", (50 * i, 90, 30), seed=i)
    lines = [{"path": "0.png", "labels": ["sky", "sea"]}, {"path": "1.png", "label": "sea"}]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (tmp_path / "val.jsonl").write_text(json.dumps({"path": "2.png", "labels": []}) + "\n")
    dataset = zoo.create_dataset(str(tmp_path))
    assert dataset.classes == ["sea", "sky"]
    assert dataset.train.labels.tolist() == [[1, 1], [1, 0]] and dataset.eval.labels.tolist() == [[0, 0]]
    with pytest.raises(DataError, match="has 2 labels, so it is multi-label data; drop --task single"):
        dataset.with_task("single")
    assert dataset.with_task("auto").task == MULTI_LABEL  # an image with none: multi-label too


def test_select_metric_map_on_single_label_data_is_one_line(tmp_path):
    images = np.zeros((8, 16, 16, 3), np.uint8)
    dataset = ImageDataset.from_arrays("tiny", ["a", "b"], (images, [0, 1] * 4), (images[:4], [0, 1] * 2))
    with pytest.raises(TrainingError, match="--select-metric map ranks multi-label predictions"):
        zoo.fit(zoo.create_model("example_tinynet", num_classes=2), dataset,
                zoo.TrainConfig(epochs=1, select_metric="map", quiet=True, output=str(tmp_path / "run")))
    assert not (tmp_path / "run").exists()


def test_balanced_sampler_weights_follow_the_rarest_label():
    from zoo.engine.recipes import _balancing_weights

    labels = np.array([[1, 0], [1, 0], [1, 0], [1, 1], [0, 0]])  # class 1 is rare: the image showing it counts most
    weights = _balancing_weights(labels).tolist()
    assert weights[3] == pytest.approx(1.0) and weights[0] == pytest.approx(0.25) and weights[4] == pytest.approx(0.25)


def test_data_check_reports_labels_per_image():
    out = _cli("data", "check", str(shared_data("food20-multilabel"))).stdout
    assert "task      multi-label" in out
    assert "labels per image (mean)" in out and "1-4" in out


# -- training, evaluation, predict, exports, consumer, serve ------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multilabel")
    run = folder / "run"
    result = zoo.finetune(model="resnet18", data=str(shared_data("food20-multilabel")), epochs=3, image_size=64,
                          limit_train=800, limit_val=200, output=str(run), quiet=True)
    return run, result, folder


def test_training_beats_the_label_frequency_baseline(trained):
    run, result, _ = trained
    last = result.history[-1]
    frequency = last.multilabel["label_frequency_map"]
    assert result.best_top1 == max(r.val_map for r in result.history)  # best means best mAP
    assert result.best_top1 > frequency + 0.05, (result.best_top1, frequency)
    meta = json.loads((run / "best.json").read_text())
    assert meta["task"] == "multi-label" and len(meta["thresholds"]) == 20 and meta["metrics"]["val_map"] > 0
    config = json.loads((run / "config.json").read_text())
    assert (config["select_metric"], config["task"]) == ("map", "auto")


def test_eval_reports_map_and_per_class_counts(trained):
    run, result, folder = trained
    out = _cli("eval", str(run), "-q", "-o", str(folder / "eval")).stdout
    assert "mAP" in out and "label frequencies alone" in out and "TP/FP/FN" in out
    metrics = json.loads((folder / "eval" / "metrics.json").read_text())
    assert metrics["task"] == "multi-label" and metrics["multilabel"]["map"] > metrics["multilabel"]["label_frequency_map"]
    truth = zoo.create_dataset(str(shared_data("food20-multilabel"))).eval.labels
    for c, row in enumerate(metrics["per_class"]):  # the counts add up to each class's positives
        assert row["tp"] + row["fn"] == truth[:, c].sum()
    _cli("eval", str(run), "-q", "--threshold", "tuned", "-o", str(folder / "tuned"))
    tuned = json.loads((folder / "tuned" / "metrics.json").read_text())
    assert tuned["multilabel"]["threshold_used"] == "tuned"
    assert tuned["macro_f1"] > metrics["macro_f1"]  # thresholds tuned on this split can only help on it


def test_predict_lists_the_labels_above_the_threshold(trained, tmp_path):
    run, _, _ = trained
    images = sorted((shared_data("food20-multilabel") / "val").glob("*.jpg"))[:6]
    results = zoo.predict(run, images, threshold=0.2)
    for r in results:
        assert all(label["prob"] >= 0.2 for label in r["labels"])
        above = [t["label"] for t in r["top"] if t["prob"] >= 0.2]
        assert [label["label"] for label in r["labels"]][:len(above)] == above
    _cli("predict", str(run), *map(str, images), "--threshold", "0.2", "-o", str(tmp_path / "p.csv"))
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert rows[0].startswith("image,labels,label_1") and rows[1].split(",")[1] == " ".join(
        label["label"] for label in results[0]["labels"])
    wrong = _cli("predict", str(run), str(images[0]), "--threshold", "1.5", check=False)
    assert wrong.returncode != 0 and "--threshold 1.5 must be between 0 and 1" in wrong.stderr


@pytest.mark.parametrize("formats, embed", [("onnx,pt2", False), ("onnx", True)])
def test_exports_pass_their_gates_and_the_consumer_gives_predicts_label_sets(trained, formats, embed):
    run, _, folder = trained
    out = folder / f"export-{embed}"
    result = zoo.export(run, format=formats, output=out, embed_preprocessing=embed)
    for name, parity in result.parity.items():
        assert parity["passed"] and parity["label_set_agreement"] == 1.0, (name, parity)
    onnx_file = result.files["onnx"]
    props = json.loads((out / "model.json").read_text())
    assert (props["task"], props["activation"], len(props["thresholds"])) == ("multi-label", "sigmoid", 20)
    images = sorted((shared_data("food20-multilabel") / "val").glob("*.jpg"))[:24]
    consumer = subprocess.run([sys.executable, str(ROOT / "examples" / "onnx_consumer.py"), str(onnx_file),
                               *map(str, images)], capture_output=True, text=True, check=True).stdout
    ours = json.loads(_cli("predict", str(onnx_file), *map(str, images), "--json").stdout)
    theirs = [json.loads(line) for line in consumer.splitlines()]
    assert any(r["labels"] for r in ours)  # not vacuous: some images get labels
    assert [{x["label"] for x in r["labels"]} for r in theirs] == [{x["label"] for x in r["labels"]} for r in ours]


def test_serve_answers_with_the_labels_predict_gives(trained):
    httpx = pytest.importorskip("httpx", reason="httpx is not installed (make test installs it)")
    pytest.importorskip("fastapi", reason="zoo[serve] is not installed (make test installs it)")
    from tests.test_serve import Server

    run, _, folder = trained
    model = zoo.export(run, format="onnx", output=folder / "served").files["onnx"]
    image = sorted((shared_data("food20-multilabel") / "val").glob("*.jpg"))[3]
    server = Server(model)
    try:
        answer = httpx.post(f"{server.url}/v1/predict", files={"file": (image.name, image.read_bytes())}).json()
    finally:
        server.stop()
    expected = zoo.predict(model, [image])[0]
    assert [x["label"] for x in answer[0]["labels"]] == [x["label"] for x in expected["labels"]]
    assert answer[0]["top"][0]["prob"] == pytest.approx(expected["top"][0]["prob"], abs=1e-5)
