"""Recipes beyond the plain step (EMA, MixUp/CutMix, policy presets, the optimizer and schedule tables),
each resuming exactly."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import zoo
from zoo.data.batch_augment import BatchAugment
from zoo.data.transforms import PRESET_TABLE, train_transform
from zoo.engine import parts
from zoo.engine.config import AUGMENTS, OPTIMIZERS, SCHEDULERS
from zoo.engine.recipes import WeightsEma
from zoo.specs import Preprocessing

COMMON = dict(model="example_tinynet", data="example_shapes", batch_size=16, quiet=True, workers=0,
              max_steps_per_epoch=4)
RECIPE = dict(ema="0.9", mixup=0.2, cutmix=1.0, augment="trivialaugment")


class StopAfter(zoo.Callback):
    """Ends a run after an epoch, as a kill between epochs would (the run is not finished)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, result):
        if result.epoch == self.epoch:
            raise zoo.StopTraining("interrupted for the test")


@pytest.mark.parametrize("pipeline", ["device", "workers"])
def test_every_recipe_together_resumes_bit_for_bit(tmp_path, pipeline):
    straight = zoo.finetune(**COMMON, **RECIPE, pipeline=pipeline, epochs=3, output=str(tmp_path / "straight"))
    zoo.finetune(**COMMON, **RECIPE, pipeline=pipeline, epochs=3, output=str(tmp_path / "resumed"),
                 callbacks=[StopAfter(2)])
    zoo.finetune(resume=str(tmp_path / "resumed"), quiet=True, workers=0)
    a, b = (load_file(str(tmp_path / name / "last.safetensors")) for name in ("straight", "resumed"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert straight.epochs_run == 3


def test_the_ema_is_what_is_evaluated_and_kept(tmp_path):
    run = tmp_path / "run"
    result = zoo.finetune(**COMMON, ema="0.9", epochs=2, output=str(run))
    kept = load_file(str(run / "last.safetensors"))
    raw = load_file(str(run / "resume" / "model.safetensors"))  # the trained weights the optimizer holds
    assert any(not torch.equal(kept[k], raw[k]) for k in kept if kept[k].is_floating_point())
    # the metrics of the run are the EMA's: evaluating the kept weights gives the recorded val top-1
    report = zoo.evaluate(run / "last.safetensors", output=tmp_path / "eval", progress=False)
    assert abs(report.top1 - result.history[-1].val_top1) < 1e-6
    export = zoo.export(run, format="onnx", output=tmp_path / "export", checkpoint=run / "last.safetensors")
    assert export.passed


def test_the_ema_average_warms_up_then_follows_the_decay():
    model = torch.nn.Linear(2, 2)
    ema = WeightsEma(model, 0.99)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    decay = (1 + 1) / (10 + 1)  # the first update's warm-up decay, not 0.99
    torch.testing.assert_close(ema.module.weight, start + (1 - decay))
    for _ in range(2000):
        ema.update(model)
    assert ema.updates == 2001 and min(ema.decay, 2002 / 2011) == 0.99


def test_mixup_trains_on_soft_targets_with_a_meaningful_train_top1(tmp_path):
    result = zoo.finetune(**{**COMMON, "max_steps_per_epoch": None}, mixup=0.4, epochs=4, lr=3e-3,
                          output=str(tmp_path / "run"))
    top1 = [r.train_top1 for r in result.history]
    assert all(0.0 <= t <= 1.0 for t in top1) and top1[-1] > 0.5  # the dominant label is learnt (3 classes)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["mixup"] == 0.4


@pytest.mark.parametrize("name", sorted(PRESET_TABLE))
def test_each_preset_is_defined_once_and_runs_in_both_paths(name):
    pre = Preprocessing.for_size(32)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8))
    torch.manual_seed(0)
    one = train_transform(pre, name)(image)
    assert one.shape == (3, 32, 32) and torch.isfinite(one).all()
    batch = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (4, 3, 36, 36), dtype=np.uint8))
    many = BatchAugment(pre, name)(batch)
    assert many.shape == (4, 3, 32, 32) and torch.isfinite(many).all()
    policy = PRESET_TABLE[name].policy
    assert (policy is None) == (not any("Augment" in type(t).__name__ for t in train_transform(pre, name).transforms))


def test_augment_choices_are_the_preset_table():
    assert set(AUGMENTS) == {"auto", *PRESET_TABLE}


def test_optimizers_and_schedules_come_from_tables(tmp_path):
    assert set(OPTIMIZERS) == set(parts.OPTIMIZER_TABLE.list()) and set(SCHEDULERS) == set(parts.SCHEDULE_TABLE.list())
    for optimizer in OPTIMIZERS:
        for scheduler in ("cosine", "onecycle"):
            result = zoo.finetune(**COMMON, optimizer=optimizer, scheduler=scheduler, epochs=1,
                                  output=str(tmp_path / f"{optimizer}-{scheduler}"))
            assert result.epochs_run == 1
