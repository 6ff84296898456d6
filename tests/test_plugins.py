"""Plugins are isolated: each failure is recorded with its distribution and never breaks zoo."""

import pytest
from typer.testing import CliRunner

import zoo
from zoo.cli import app
from tests.plugin_factory import make_plugin

GOOD = """
def register(ctx):
    ctx.add_model("plugin_net", "zoo.models.resnet:build_resnet", factory_kwargs={"variant": "resnet18"})
"""


@pytest.fixture
def broken_plugins(tmp_path, fresh_registry, monkeypatch):
    site = tmp_path / "site"
    monkeypatch.syspath_prepend(str(site))
    make_plugin(site, "zoo-good", GOOD, {"zoo.models": "good = MODULE:register"})
    make_plugin(site, "zoo-import-fails", "raise RuntimeError('boom at import')\n",
                {"zoo.models": "importfail = MODULE:register"})
    make_plugin(site, "zoo-register-fails", "def register(ctx):\n    ctx.add_model('half', 'x:y')\n    raise ValueError('bad config')\n",
                {"zoo.models": "regfail = MODULE:register"})
    make_plugin(site, "zoo-duplicate", "def register(ctx):\n    ctx.add_model('dup_only', 'x:y')\n    ctx.add_model('resnet18', 'x:y')\n",
                {"zoo.models": "dup = MODULE:register"})
    make_plugin(site, "zoo-needs-extra", "import not_installed_package_xyz\n",
                {"zoo.datasets": "extra = MODULE:register"})
    return fresh_registry


def test_broken_plugins_are_recorded_not_raised(broken_plugins):
    names = zoo.list_models(source="zoo")
    assert "plugin_net" in names and "resnet18" in names
    assert "half" not in names and "dup_only" not in names  # a failing plugin registers nothing
    records = {r.distribution: r for r in zoo.list_plugins()}
    assert "RuntimeError: boom at import" in records["zoo-import-fails"].error
    assert "ValueError: bad config" in records["zoo-register-fails"].error
    assert "already registered by zoo" in records["zoo-duplicate"].error
    assert "missing module 'not_installed_package_xyz'" in records["zoo-needs-extra"].error
    assert records["zoo-good"].ok and records["zoo-good"].models == ["plugin_net"]
    assert zoo.model_info("resnet18").distribution == "zoo"


def test_zoo_plugins_command_lists_failures_and_exits_0(broken_plugins):
    result = CliRunner().invoke(app, ["plugins"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("FAILED") and "zoo-import-fails" in line and "boom at import" in line for line in lines)
    assert any(line.startswith("ok") and "zoo-good" in line and "plugin_net" in line for line in lines)
    assert lines[-1].endswith("4 failed")


def test_other_commands_still_work_with_broken_plugins(broken_plugins):
    result = CliRunner().invoke(app, ["list", "plugin*"])
    assert result.exit_code == 0 and "plugin_net" in result.output


def test_example_plugin_is_installed_and_listed(fresh_registry):
    result = CliRunner().invoke(app, ["list", "example*"])
    assert result.exit_code == 0 and "example_tinynet" in result.output and "zoo-example" in result.output
    result = CliRunner().invoke(app, ["plugins"])
    assert "zoo-example" in result.output and "example_shapes" in result.output
    model = zoo.create_model("example_tinynet", num_classes=3)
    dataset = zoo.create_dataset("example_shapes")
    assert dataset.num_classes == 3 and len(dataset.train) == 288
    import torch

    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 3)
