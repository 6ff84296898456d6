"""The engine's CPU defaults: bf16 where the CPU computes it natively, channels_last, compile only where it
pays (and a missing compiler is one line), and the same accuracy as fp32 on real photos."""

import json
import logging

import pytest
import torch

import zoo
from zoo.engine import parts
from tests.conftest import shared_data


def test_precision_layout_and_compile_decisions_on_cpu():
    cpu = torch.device("cpu")
    dtype, why = parts.precision_decision("auto", cpu)
    assert (dtype == torch.bfloat16) == parts.cpu_has_native_bf16() and why.startswith("auto: ")
    assert parts.precision_decision("fp32", cpu) == (None, "asked for")
    assert parts.channels_last_default(cpu) and not parts.channels_last_default(torch.device("mps"))
    compiled, reason = parts.compile_decision(None, cpu, 10_000)
    assert not compiled and "does not pay" in reason
    assert parts.compile_decision(True, cpu, 10)[0]


def test_compile_without_a_compiler_trains_uncompiled(monkeypatch, caplog):
    monkeypatch.setattr(parts.shutil, "which", lambda name: None)
    model = torch.nn.Linear(2, 2)
    with caplog.at_level(logging.WARNING, logger="zoo"):
        assert parts.maybe_compile(model, True, "on (asked for)", torch.device("cpu")) is model
    assert any("needs a C++ compiler" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
def test_auto_precision_keeps_the_accuracy_of_fp32_on_real_photos(tmp_path):
    shared_data("hymenoptera")
    common = dict(model="resnet18", data="hymenoptera", epochs=6, batch_size=32, image_size=64, quiet=True, workers=0)
    best = {"fp32": [], "auto": []}
    for seed in (0, 1, 2):  # one short run varies by +-6 points with the seed: compare means
        best["fp32"].append(zoo.finetune(output=str(tmp_path / f"fp32-{seed}"), precision="fp32", channels_last=False,
                                         seed=seed, **common).best_top1)
        best["auto"].append(zoo.finetune(output=str(tmp_path / f"auto-{seed}"), seed=seed, **common).best_top1)
    fp32, auto = (sum(v) / len(v) for v in (best["fp32"], best["auto"]))
    # 153 val images. Measured on the CPU box (native bf16): fp32 0.697, auto (bf16, channels_last) 0.678.
    assert abs(fp32 - auto) <= 0.04, best
    assert min(fp32, auto) >= 0.6  # above the majority class (0.54)
    config = json.loads((tmp_path / "auto-0" / "config.json").read_text())
    assert config["precision"] == "auto"
