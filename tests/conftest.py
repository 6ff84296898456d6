"""Shared fixtures: the real data in ../shared/data, tiny image folders, a fresh registry, a loopback server."""

from __future__ import annotations

import functools
import http.server
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ZOO_TEST_DATA", ROOT.parent / "shared" / "data"))


def shared_data(name: str) -> Path:
    """A folder of ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"shared test data {path} is absent (set ZOO_TEST_DATA to the shared/data folder)")
    return path


@pytest.fixture(autouse=True, scope="session")
def _session_caches(tmp_path_factory):
    """Module- and session-scoped fixtures run before the per-test isolation below: keep them off the
    user's caches too."""
    saved = {k: os.environ.get(k) for k in ("ZOO_CACHE", "TORCH_HOME", "ZOO_DATA_ROOT")}
    cache = tmp_path_factory.mktemp("zoo-session-cache")
    os.environ.update(ZOO_CACHE=str(cache), TORCH_HOME=str(cache / "torch"), ZOO_DATA_ROOT=str(SHARED_DATA))
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory, monkeypatch):
    """Keep every test away from the user's caches and data roots, and off the network."""
    cache = tmp_path_factory.mktemp("zoo-cache")
    monkeypatch.setenv("ZOO_CACHE", str(cache))
    monkeypatch.setenv("TORCH_HOME", str(cache / "torch"))
    monkeypatch.setenv("ZOO_DATA_ROOT", str(SHARED_DATA))
    monkeypatch.delenv("ZOO_DEBUG", raising=False)
    monkeypatch.setattr(urllib.request, "urlopen", _loopback_only(urllib.request.urlopen))


def _loopback_only(urlopen):
    """No test may start a real download (a fresh clone without ../shared would fetch CIFAR-10)."""

    def guarded(url, *args, **kwargs):
        host = urllib.parse.urlsplit(getattr(url, "full_url", url)).hostname
        if host not in ("127.0.0.1", "localhost"):
            raise urllib.error.URLError(f"tests are offline: refused a download from {host}")
        return urlopen(url, *args, **kwargs)

    return guarded


@pytest.fixture(scope="session")
def trained_shapes(tmp_path_factory, _session_caches) -> Path:
    """A run of example_tinynet on example_shapes, shared by the export tests (6 epochs at lr 3e-3 reach
    0.97-1.0 val top-1 on the CPU box; 2 epochs stay near chance)."""
    import zoo

    run = tmp_path_factory.mktemp("runs") / "shapes"
    zoo.finetune(model="example_tinynet", data="example_shapes", epochs=6, lr=3e-3, batch_size=32, output=str(run),
                 quiet=True, workers=0)
    return run


@pytest.fixture
def fresh_registry(monkeypatch):
    """A new process-wide registry, so plugins load again under the test's conditions."""
    from zoo.registry import core

    registry = core.Registry()
    monkeypatch.setattr(core, "_REGISTRY", registry)
    return registry


def write_image(path: Path, color: tuple[int, int, int], size: int = 24, noise: int = 20, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(color) + rng.integers(-noise, noise + 1, (size, size, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


COLORS = {"red": (200, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 200)}


@pytest.fixture
def class_folders(tmp_path) -> Path:
    """root/<class>/*.png with 10 images of a distinct colour per class (no split)."""
    root = tmp_path / "colors"
    for c, (name, color) in enumerate(COLORS.items()):
        for i in range(10):
            write_image(root / f"{c:03d}_{name}" / f"{i}.png", color, seed=c * 100 + i)
    return root


@pytest.fixture
def loopback_server(tmp_path):
    """An http.server on 127.0.0.1 serving a folder the test fills; yields (folder, base_url)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass
