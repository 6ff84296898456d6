"""Imbalanced classes: balanced accuracy and macro-F1 everywhere, class weights, a balanced sampler, the best
checkpoint by the metric that matters, and a data check that says so."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import zoo
from zoo.cli import app
from zoo.engine.metrics import class_balanced_scores
from zoo.engine.recipes import balanced_sampler, class_weights

runner = CliRunner()


def long_tail(counts=(120, 24, 8), seed=0) -> zoo.ImageDataset:
    """Three colours with a 15:1 tail; the val split is balanced."""
    rng = np.random.default_rng(seed)
    colours = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]

    def split(per_class):
        images, labels = [], []
        for label, n in enumerate(per_class):
            base = np.array(colours[label], dtype=np.int16)
            noise = rng.integers(-60, 61, (n, 16, 16, 3))
            images.append(np.clip(base + noise, 0, 255).astype(np.uint8))
            labels += [label] * n
        return np.concatenate(images), labels

    return zoo.ImageDataset.from_arrays("tail", ["red", "green", "blue"], split(counts), split((20, 20, 20)))


def test_balanced_accuracy_and_macro_f1_from_a_confusion_matrix():
    confusion = torch.tensor([[90, 10, 0], [5, 5, 0], [0, 0, 0]])  # a class with no images is left out
    scores = class_balanced_scores(confusion)
    assert scores["val_balanced_accuracy"] == pytest.approx((0.9 + 0.5) / 2)
    f1_a = 2 * (90 / 95) * 0.9 / (90 / 95 + 0.9)
    f1_b = 2 * (5 / 15) * 0.5 / (5 / 15 + 0.5)
    assert scores["val_macro_f1"] == pytest.approx((f1_a + f1_b) / 2)


def test_class_weights_effective_inverse_and_from_a_file(tmp_path):
    counts = [500, 50, 10]
    effective, inverse = class_weights("effective", counts), class_weights("inverse", counts)
    for weights in (effective, inverse):
        assert float((weights * torch.tensor(counts, dtype=torch.float32)).sum()) == pytest.approx(sum(counts), rel=1e-5)
        assert weights[0] < weights[1] < weights[2]
    assert effective[2] / effective[0] < inverse[2] / inverse[0]  # effective numbers weigh the tail less extremely
    assert class_weights("none", counts) is None
    path = tmp_path / "w.json"
    path.write_text("[1, 2, 3]")
    assert class_weights(str(path), counts).tolist() == pytest.approx(
        (torch.tensor([1.0, 2, 3]) * 560 / (500 + 100 + 30)).tolist())
    path.write_text("[1, 2]")
    with pytest.raises(zoo.ZooError, match="must hold a list of 3 positive numbers"):
        class_weights(str(path), counts)


def test_the_balanced_sampler_draws_each_class_alike():
    labels = np.array([0] * 900 + [1] * 90 + [2] * 10)
    drawn = np.bincount(labels[list(balanced_sampler(labels, torch.Generator().manual_seed(0)))], minlength=3)
    assert drawn.sum() == 1000 and drawn.min() > 250  # about a third each


def test_auto_for_an_imbalanced_run_weighs_classes_and_selects_by_balanced_accuracy(tmp_path, caplog):
    with caplog.at_level("INFO", logger="zoo"):
        result = zoo.fit(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 3)), long_tail(),
                         zoo.TrainConfig(epochs=3, batch_size=16, output=str(tmp_path / "run"), workers=0,
                                         image_size=16),
                         zoo.Preprocessing(input_size=16, resize_size=16), classifier="1")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["class_weights"] == "effective" and config["select_metric"] == "balanced_accuracy"
    lines = [r.getMessage() for r in caplog.records]
    assert any("class weights effective (largest class 15x the smallest)" in m for m in lines)
    assert any(m.startswith("epoch 1/3") and "bal-acc" in m and "macro-F1" in m for m in lines)
    best = max(result.history, key=lambda r: r.val_balanced_accuracy)
    assert result.best_epoch == best.epoch and result.best_top1 == best.val_balanced_accuracy
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all("val_balanced_accuracy" in r and "val_macro_f1" in r for r in rows)


def test_a_balanced_run_keeps_top1_and_plain_lines(tmp_path):
    config = zoo.plan(model="example_tinynet", data="example_shapes", output=str(tmp_path / "r")).config
    assert config["class_weights"] == "none" and config["select_metric"] == "top1" and config["sampler"] == "shuffle"


@pytest.mark.parametrize("pipeline", ["device", "workers"])
def test_the_balanced_sampler_trains_and_resumes_in_both_pipelines(tmp_path, pipeline):
    dataset = long_tail()
    common = dict(batch_size=16, workers=0, image_size=16, sampler="balanced", class_weights="none", quiet=True,
                  pipeline=pipeline)

    def model():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 3))

    pre = zoo.Preprocessing(input_size=16, resize_size=16)
    class StopAfterFirst(zoo.Callback):  # a run stopped between epochs, as a kill would stop it
        def on_epoch_end(self, result):
            raise zoo.StopTraining("interrupted for the test")

    zoo.fit(model(), dataset, zoo.TrainConfig(epochs=2, output=str(tmp_path / "a"), **common), pre, classifier="1")
    zoo.fit(model(), dataset, zoo.TrainConfig(epochs=2, output=str(tmp_path / "b"), **common), pre, classifier="1",
            callbacks=[StopAfterFirst()])
    zoo.fit(model(), dataset, zoo.TrainConfig(epochs=2, output=str(tmp_path / "b"), **common), pre, classifier="1",
            resume=str(tmp_path / "b"))
    from safetensors.torch import load_file

    a, b = load_file(str(tmp_path / "a" / "last.safetensors")), load_file(str(tmp_path / "b" / "last.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_data_check_warns_about_imbalance_and_names_the_options(tmp_path):
    from PIL import Image

    for name, n in (("many", 30), ("few", 3)):
        for split in ("train", "val"):
            folder = tmp_path / "data" / split / name
            folder.mkdir(parents=True)
            for i in range(n if split == "train" else 2):
                Image.new("RGB", (8, 8), (i * 7 % 255, 10, 10)).save(folder / f"{i}.png")
    result = runner.invoke(app, ["data", "check", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert "warning: classes are imbalanced: many has 30 training images, few 3 (10x)" in result.output
    assert "--class-weights" in result.output and "--sampler balanced" in result.output


def test_eval_reports_balanced_accuracy_and_macro_f1(tmp_path):
    run = tmp_path / "run"
    zoo.finetune(model="example_tinynet", data="example_shapes", epochs=1, quiet=True, workers=0, output=str(run))
    report = zoo.evaluate(run, output=tmp_path / "eval", progress=False)
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert saved["balanced_accuracy"] == pytest.approx(np.mean([c["recall"] for c in saved["per_class"]]))
    assert "balanced accuracy" in report.summary() and "macro-F1" in report.summary()


def test_the_balanced_sampler_under_torchrun_splits_one_balanced_epoch_over_the_processes():
    from types import SimpleNamespace

    from zoo.engine.config import TrainConfig
    from zoo.engine.distributed import DistributedContext
    from zoo.engine.recipes import DistributedBalancedSampler
    from zoo.engine.setup import sampler_for

    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    ranks = [sampler_for(TrainConfig(sampler="balanced"), DistributedContext(2, rank), torch.Generator())(
        SimpleNamespace(labels=labels)) for rank in range(2)]
    assert all(isinstance(s, DistributedBalancedSampler) for s in ranks)
    for sampler in ranks:
        sampler.set_epoch(3)
    first, second = (list(s) for s in ranks)
    assert len(first) == len(second) == 50  # one epoch's worth of draws, split in two
    counts = np.bincount(labels[first + second], minlength=3)
    assert counts.min() >= 20, counts  # about a third each: the class of one image too
    again = DistributedBalancedSampler(labels, 2, 0, seed=0)
    again.set_epoch(3)
    assert list(again) == first  # the same epoch draws the same: resume is exact
    again.set_epoch(4)
    assert list(again) != first
