"""`zoo serve` as users meet it: a real server process on 127.0.0.1, real HTTP, a real browser."""

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import zoo
from tests.conftest import ROOT, shared_data

httpx = pytest.importorskip("httpx", reason="httpx is not installed (make test installs it)")
pytest.importorskip("fastapi", reason="zoo[serve] is not installed (make test installs it)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    def __init__(self, model: Path, *options: str):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([sys.executable, "-m", "zoo", "serve", str(model), "--port", str(self.port),
                                         *options], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env={**os.environ, "PYTHONPATH": str(ROOT)})
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.time() > deadline:
                self.stop()
                pytest.fail(f"zoo serve did not start: {self.process.stderr.read()[-2000:]}")
            time.sleep(0.3)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    data = shared_data("hymenoptera")
    folder = tmp_path_factory.mktemp("serve")
    run = folder / "ants"
    zoo.finetune(model="example_tinynet", data=str(data), epochs=3, lr=3e-3, batch_size=32, output=str(run),
                 quiet=True, workers=0)
    zoo.export(run, format="onnx", output=folder / "export")
    server = Server(folder / "export" / "model.onnx", "--max-upload-mb", "8", "--max-images", "16",
                    "--body-timeout", "2", "--max-wait-ms", "20")
    yield server, folder / "export" / "model.onnx", data
    server.stop()


def _photos(data: Path) -> list[Path]:
    return sorted((data / "val").rglob("*.jpg"))


@pytest.mark.slow
def test_every_val_photo_gets_what_zoo_predict_gives(served):
    server, model, data = served
    photos = _photos(data)
    expected = zoo.predict(model, [str(p) for p in photos], top_k=2)

    async def ask_all():
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
            async def ask(photo):
                response = await client.post("/v1/predict?top_k=2", files={"file": (photo.name, photo.read_bytes())})
                assert response.status_code == 200, response.text
                return response.json()[0]
            return await asyncio.gather(*(ask(p) for p in photos))

    answers = asyncio.run(ask_all())
    assert len(answers) == len(expected) == len(photos) >= 150
    for got, want in zip(answers, expected):
        assert [t["label"] for t in got["top"]] == [t["label"] for t in want["top"]], got["image"]
        for a, b in zip(got["top"], want["top"]):
            assert abs(a["prob"] - b["prob"]) <= 1e-6, (got, want)
    # concurrent requests were batched, and a batch answers what one-at-a-time calls answer
    metrics = httpx.get(f"{server.url}/metrics").text
    count = float(next(line.split()[-1] for line in metrics.splitlines() if line.startswith("zoo_batch_size_count")))
    total = float(next(line.split()[-1] for line in metrics.splitlines() if line.startswith("zoo_batch_size_sum")))
    assert total / count > 1.5, (total, count)
    one = httpx.post(f"{server.url}/v1/predict?top_k=2", files={"file": photos[0].read_bytes()}).json()[0]
    assert one["top"] == answers[0]["top"]


def test_several_images_in_one_request_and_a_raw_body(served):
    server, _, data = served
    photos = _photos(data)[:3]
    many = httpx.post(f"{server.url}/v1/predict", files=[("file", (p.name, p.read_bytes())) for p in photos]).json()
    assert [m["image"] for m in many] == [p.name for p in photos] and all(len(m["top"]) == 2 for m in many)
    raw = httpx.post(f"{server.url}/v1/predict?top_k=1", content=photos[0].read_bytes(),
                     headers={"content-type": "image/jpeg"}).json()
    assert raw[0]["top"][0] == many[0]["top"][0]


def test_bad_uploads_are_one_line_4xx_and_the_server_goes_on(served):
    server, _, data = served
    bad = shared_data("bad_inputs")
    jpeg = _photos(data)[0].read_bytes()
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buffer, format="PNG")
    tiny = buffer.getvalue()
    cases = {
        "not an image": (dict(files={"file": ("notes.jpg", b"hello, not a photo")}), 400, "not an image"),
        "truncated": (dict(files={"file": ("half.jpg", jpeg[: len(jpeg) // 3])}), 400, "half.jpg"),
        "empty": (dict(files={"file": ("empty.jpg", b"")}), 400, "empty"),
        "bomb": (dict(files={"file": ("bomb.png", (bad / "decompression_bomb.png").read_bytes())}), 400, "refused"),
        "too large": (dict(content=b"\xff\xd8" + b"0" * 9_000_000, headers={"content-type": "image/jpeg"}), 413,
                      "--max-upload-mb 8"),
        "wrong type": (dict(content=jpeg, headers={"content-type": "application/json"}), 415, "not an image"),
        "too many": (dict(files=[("file", ("a.png", tiny))] * 1000), 413, "--max-images 16"),
        "no file field": (dict(files={"photo": ("a.jpg", jpeg)}), 400, "no field named 'file'"),
        "bad top_k": (dict(files={"file": ("a.jpg", jpeg)}, params={"top_k": "x"}), 422, "top_k"),
    }
    for name, (request, status, says) in cases.items():
        response = httpx.post(f"{server.url}/v1/predict", timeout=30, **request)
        assert response.status_code == status, (name, response.status_code, response.text)
        body = response.json()
        assert set(body) == {"error"} and "\n" not in body["error"] and says in body["error"], (name, body)
    assert httpx.post(f"{server.url}/v1/predict", files={"file": ("a.jpg", jpeg)}).status_code == 200


def test_a_slow_loris_upload_times_out_and_the_server_goes_on(served):
    server, _, data = served
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n")
        sock.sendall(b"\xff\xd8" + b"0" * 100)  # then nothing more
        sock.settimeout(15)
        reply = b""
        while b'"}' not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
        reply = reply.decode(errors="replace")
    assert reply.startswith("HTTP/1.1 408") and '"error"' in reply and "did not arrive within 2 s" in reply
    jpeg = _photos(data)[0].read_bytes()
    assert httpx.post(f"{server.url}/v1/predict", files={"file": ("a.jpg", jpeg)}).status_code == 200


def test_model_health_metrics_and_docs(served):
    server, model, _ = served
    card = httpx.get(f"{server.url}/v1/model").json()
    parity = json.loads((model.parent / "parity.json").read_text())
    from zoo.hub import file_digest

    assert card["classes"] == ["ants", "bees"] and card["sha256"] == file_digest(model)
    assert card["parity"]["onnx"]["passed"] is parity["onnx"]["passed"] is True and card["formats"] == {"onnx": "model.onnx"}
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    metrics = httpx.get(f"{server.url}/metrics").text
    assert "zoo_requests_total" in metrics and "zoo_request_seconds_bucket" in metrics and "zoo_queue_depth" in metrics
    assert httpx.get(f"{server.url}/openapi.json").json()["paths"]["/v1/predict"]["post"]
    assert httpx.get(f"{server.url}/docs").status_code == 200


def test_sigterm_answers_the_request_in_flight_then_exits_0(served, tmp_path):
    _, model, data = served
    server = Server(model, "--max-batch", "1")
    photos = [p.read_bytes() for p in _photos(data)[:16]]

    async def in_flight():
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            request = asyncio.create_task(client.post("/v1/predict", files=[("file", ("a.jpg", b)) for b in photos]))
            await asyncio.sleep(0.2)
            server.process.send_signal(signal.SIGTERM)
            return await request

    response = asyncio.run(in_flight())
    assert response.status_code == 200 and len(response.json()) == 16
    assert server.process.wait(timeout=60) == 0


def test_serve_binds_loopback_by_default_and_names_a_missing_extra(monkeypatch):
    from typer.testing import CliRunner

    from zoo.cli import app

    help_text = CliRunner().invoke(app, ["serve", "--help"]).output
    assert "127.0.0.1" in help_text
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    result = CliRunner().invoke(app, ["serve", "latest"])
    assert result.exit_code == 1 and result.output == "error: zoo serve needs uvicorn: pip install 'zoo[serve]'\n"


def _chromium() -> str | None:
    return next((path for name in ("chromium", "chromium-browser", "google-chrome")
                 if (path := shutil.which(name))), None)


@pytest.mark.slow
def test_the_page_shows_the_top_label_of_an_uploaded_photo_in_a_real_browser(served):
    server, model, data = served
    browser_path = _chromium()
    if browser_path is None:
        pytest.skip("no Chromium here (make test installs the Debian package where apt-get can)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    photo = (data / "val" / "bees").glob("*.jpg").__next__()
    expected = zoo.predict(model, [str(photo)], top_k=1)[0]["top"][0]["label"]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            requests = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(server.url)
            assert "example_tinynet" in page.title() and "parity onnx: passed" in page.content()
            page.set_input_files("#file", str(photo))
            page.wait_for_selector(".top-label", timeout=20_000)
            assert page.locator(".top-label").first.inner_text() == expected
            assert all(url.startswith(server.url) or url.startswith("blob:") for url in requests), requests
        finally:
            browser.close()
