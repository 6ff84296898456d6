"""The docs as users meet them: the README's promises on size and commands, the site builds strictly,
and every command of docs/getting-started.md runs as written."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

README = ROOT / "README.md"


def test_the_readme_is_short_and_starts_with_the_two_commands():
    text = README.read_text()
    assert len(text.encode()) <= 8 * 1024
    first_block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.split("#")[0].strip()]
    assert commands == ["make demo", "make test"]
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / link).is_file(), link


def test_the_docs_build_strictly(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (make test installs it)")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "getting-started" / "index.html").is_file()


def _getting_started_commands() -> list[str]:
    text = (ROOT / "docs" / "getting-started.md").read_text()
    first_run = text.split("## A first run", 1)[1]
    block = re.search(r"```bash\n(.*?)```", first_run, re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip() and not line.startswith("#")]


@pytest.mark.slow
def test_every_getting_started_command_runs_as_written(tmp_path):
    shutil.copytree(ROOT / "examples" / "images", tmp_path / "examples" / "images")
    zoo_command = [sys.executable, "-m", "zoo"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    commands = _getting_started_commands()
    assert len(commands) >= 8 and all(c.startswith("zoo ") for c in commands)
    for command in commands:
        args = command.split()[1:]
        done = subprocess.run([*zoo_command, *[a.strip("'") for a in args]], cwd=tmp_path, capture_output=True,
                              text=True, env=env, timeout=600)
        assert done.returncode == 0, f"{command}\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}"
        if command.startswith("zoo predict"):
            assert done.stdout.count("digit-") == 3, done.stdout
    assert (tmp_path / "runs" / "first" / "last.safetensors").is_file()
    assert (tmp_path / "exports" / "first" / "model.onnx").is_file()
