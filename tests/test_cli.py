"""The CLI: fast help without torch, clear one-line errors, exit codes."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from zoo.cli import app

runner = CliRunner()


def test_help_imports_neither_torch_nor_plugins():
    code = (
        "import sys\n"
        "from zoo.cli import app\n"
        "from typer.testing import CliRunner\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(r.output)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'timm', 'zoo_example', 'onnx')]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for command in ("finetune", "export", "predict", "list", "info", "plugins", "data"):
        assert f"  {command} " in result.stdout
    assert "e.g. zoo finetune" in result.stdout


@pytest.mark.parametrize("command", [["finetune"], ["export"], ["predict"], ["list"], ["info"], ["plugins"],
                                     ["data", "check"], ["cache", "info"], ["cache", "clear"]])
def test_every_command_help_exits_0(command):
    result = subprocess.run([sys.executable, "-m", "zoo", *command, "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert f"zoo {' '.join(command)} [OPTIONS]" in result.stdout.splitlines()[0]


def test_list_and_info():
    result = runner.invoke(app, ["list", "resnet*"])
    assert result.exit_code == 0
    assert "resnet152" in result.output and "resnet18_cifar" in result.output
    result = runner.invoke(app, ["info", "resnet18_cifar"])
    assert result.exit_code == 0
    assert "11,173,962" in result.output and "3x32x32" in result.output


def test_unknown_model_is_one_line_error_exit_1():
    result = runner.invoke(app, ["info", "resnet151"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: unknown model 'resnet151' (did you mean resnet152, resnet101, resnet50?); "
        "`zoo list` shows zoo's models, prefix tv: or timm: for torchvision and timm models"
    ]


def test_debug_env_shows_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "zoo", "info", "nope_model"], capture_output=True, text=True,
        env={**__import__("os").environ, "ZOO_DEBUG": "1"}, timeout=120,
    )
    assert result.returncode == 1 and "Traceback" in result.stderr and "UnknownNameError" in result.stderr
    result = subprocess.run([sys.executable, "-m", "zoo", "info", "nope_model"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: unknown model 'nope_model'")


def test_list_datasets():
    result = runner.invoke(app, ["list", "--datasets"])
    assert result.exit_code == 0
    for name in ("food20", "hymenoptera", "cifar10", "flowers", "digits", "example_shapes"):
        assert name in result.output


def test_cache_info_and_clear(monkeypatch, tmp_path):
    import os

    cache = tmp_path / "cache"
    monkeypatch.setenv("ZOO_CACHE", str(cache))
    (cache / "decoded").mkdir(parents=True)
    (cache / "decoded" / "a.npy").write_bytes(b"x" * 1500)
    (cache / "weights").mkdir()
    (cache / "weights" / "w.pth").write_bytes(b"y" * 10)
    result = runner.invoke(app, ["cache", "info"])
    assert result.exit_code == 0
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert "1 files     1.5 KB" in lines["decoded"] and "1 files       10 B" in lines["weights"]
    result = runner.invoke(app, ["cache", "clear", "decoded", "nonsense"])
    assert result.exit_code == 1 and "unknown cache kind 'nonsense'" in result.output
    assert (cache / "decoded" / "a.npy").exists()  # nothing deleted when one name is wrong
    result = runner.invoke(app, ["cache", "clear", "decoded", "--yes"])
    assert result.exit_code == 0 and result.output == "freed 1.5 KB\n"
    assert not (cache / "decoded").exists() and os.path.exists(cache / "weights" / "w.pth")
