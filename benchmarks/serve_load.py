"""`zoo serve` under load, side by side in one run with what bounds it.

resnet18 exported to ONNX at 224 px (random init: the weights do not change the arithmetic). An
async load generator (httpx) posts one real photo per request at each concurrency for a fixed time:
requests/s, p50/p95/p99 latency, errors. Next to it, in the same run:
  - the bare runtime: onnxruntime in a loop at batch 1 and at the batch size the server formed
    (the ceiling), and zoo's decode + preprocessing of the photo alone (what each request adds);
  - `zoo serve --max-batch 1` (no batching);
  - a naive FastAPI handler calling onnxruntime per request (decode, preprocess, run).
The load generator shares the machine with the server: on a 2-core box it takes a core's share.

    python benchmarks/serve_load.py [--seconds 10] [--concurrency 1 8 32] [--device cpu|cuda] [--smoke]
"""

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import zoo
from _engine_runs import register_synthetic
from _table import SHARED_DATA, progress, report

parser = argparse.ArgumentParser()
parser.add_argument("--seconds", type=float, default=10.0, help="load time per row")
parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
parser.add_argument("--model", default="resnet18")
parser.add_argument("--size", type=int, default=224)
parser.add_argument("--device", default="cpu", help="cpu, or cuda for a checkpoint served by PyTorch on the GPU")
parser.add_argument("--data-root", default=SHARED_DATA)
parser.add_argument("--smoke", action="store_true", help="example_tinynet, 1 s per row, concurrency 1 and 4")
args = parser.parse_args()
if args.smoke:
    args.model, args.size, args.seconds, args.concurrency = "example_tinynet", 32, 1.0, [1, 4]

NAIVE_APP = '''
import io, sys
import numpy as np, onnxruntime as ort
from fastapi import FastAPI, UploadFile
from zoo.data.decode import decode_rgb
from zoo.runs import CheckpointMeta
import json
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
meta = json.loads(session.get_modelmeta().custom_metadata_map["zoo.meta"])
transform = CheckpointMeta.from_dict(meta).preprocessing.eval_transform()
classes = meta["classes"]
app = FastAPI()

@app.post("/v1/predict")
async def predict(file: UploadFile):
    x = transform(decode_rgb(io.BytesIO(await file.read())))[None].numpy()
    logits = session.run(None, {session.get_inputs()[0].name: x})[0][0]
    p = np.exp(logits - logits.max()); p /= p.sum()
    best = int(p.argmax())
    return [{"image": file.filename, "top": [{"label": classes[best], "prob": float(p[best])}]}]

@app.get("/health")
async def health():
    return {"status": "ok"}
'''


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(command: list[str]) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    process = subprocess.Popen([*command, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.3)
        if process.poll() is not None:
            break
    raise SystemExit(f"server did not start: {' '.join(command)}\n{process.stderr.read()[-2000:]}")


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)


async def load(url: str, photo: bytes, concurrency: int, seconds: float) -> dict:
    import httpx

    latencies, errors = [], 0
    end = time.perf_counter() + seconds

    async def user(client):
        nonlocal errors
        while time.perf_counter() < end:
            started = time.perf_counter()
            try:
                response = await client.post("/v1/predict", files={"file": ("photo.jpg", photo)})
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        began = time.perf_counter()
        await asyncio.gather(*(user(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    q = np.percentile(latencies, [50, 95, 99]) * 1000 if latencies else [float("nan")] * 3
    return {"requests_per_s": len(latencies) / elapsed, "p50_ms": float(q[0]), "p95_ms": float(q[1]),
            "p99_ms": float(q[2]), "errors": errors}


def server_batch_mean(url: str) -> float:
    import httpx

    text = httpx.get(f"{url}/metrics").text
    value = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
             if line.startswith(("zoo_batch_size_sum", "zoo_batch_size_count"))}
    return value["zoo_batch_size_sum"] / max(1.0, value["zoo_batch_size_count"])


def bare_runtime(model: Path, batch: int, size: int, seconds: float) -> float:
    """onnxruntime alone: images/s for preprocessed batches (no HTTP, no decode)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
    session.run(None, {name: x})
    runs, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        session.run(None, {name: x})
        runs += 1
    return runs * batch / (time.perf_counter() - began)


def decode_cost_ms(photo_path: Path, model: Path) -> float:
    from zoo.data.decode import decode_rgb
    from zoo.inference import load_predictor

    transform = load_predictor(model).transform()
    started, n = time.perf_counter(), 20
    for _ in range(n):
        transform(decode_rgb(photo_path))
    return (time.perf_counter() - started) / n * 1000


def build_export(folder: Path) -> Path:
    name = register_synthetic("serve-synthetic", 64, args.size, 10, 16)
    run = folder / "run"
    zoo.finetune(model=args.model, data=name, epochs=1, batch_size=16, image_size=args.size, output=str(run),
                 quiet=True, max_steps_per_epoch=1, workers=0)
    return zoo.export(run, format="onnx", output=folder / "export", check=False).files["onnx"]


def main() -> None:
    photo_path = next((Path(args.data_root) / "hymenoptera" / "val" / "ants").glob("*.jpg"))
    photo = photo_path.read_bytes()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = build_export(Path(tmp))
        decode_ms = decode_cost_ms(photo_path, model)
        zoo_cli = [sys.executable, "-m", "zoo", "serve", str(model), "--device", args.device]
        setups = [("zoo serve", zoo_cli), ("zoo serve --max-batch 1", [*zoo_cli, "--max-batch", "1"])]
        naive_script = Path(tmp) / "naive.py"
        naive_script.write_text(NAIVE_APP)
        naive = [sys.executable, "-c", "import sys, uvicorn, runpy; sys.argv = sys.argv[1:]; "
                 "ns = runpy.run_path(sys.argv[0]); uvicorn.run(ns['app'], host='127.0.0.1', "
                 "port=int(sys.argv[-1]), log_level='warning')", str(naive_script), str(model)]
        batch_formed = 1.0
        for label, command in [*setups, ("naive FastAPI + onnxruntime per request", naive)]:
            process, url = start(command)
            try:
                for concurrency in args.concurrency:
                    measured = asyncio.run(load(url, photo, concurrency, args.seconds))
                    row = {"server": label, "concurrency": concurrency, **measured, "images_per_s": measured["requests_per_s"]}
                    if label == "zoo serve":
                        batch_formed = server_batch_mean(url)
                        row["mean_batch"] = batch_formed
                    rows.append(row)
                    progress(row)
            finally:
                stop(process)
        ceiling = {1: bare_runtime(model, 1, args.size, args.seconds)}
        formed = max(2, round(batch_formed))  # the batch the server formed (at least 2: a row apart from batch 1)
        ceiling[formed] = bare_runtime(model, formed, args.size, args.seconds)
        for batch, rate in ceiling.items():
            row = {"server": f"bare onnxruntime, batch {batch} (no HTTP, no decode)", "concurrency": "-",
                   "requests_per_s": float("nan"), "p50_ms": float("nan"), "p95_ms": float("nan"),
                   "p99_ms": float("nan"), "errors": 0, "images_per_s": rate}
            rows.append(row)
            progress(row)
    for row in rows:
        row.setdefault("mean_batch", float("nan"))
        row["vs_bare_formed_batch"] = row["images_per_s"] / ceiling[formed]
    report("serve_load", rows, {"model": args.model, "size": args.size, "seconds": args.seconds,
                                "decode_and_preprocess_ms_per_image": decode_ms, "batch_formed": batch_formed,
                                "device": args.device, "cpu": _cpu()}, smoke=args.smoke)
    print(f"decode + preprocess of the photo: {decode_ms:.1f} ms per image (in the server, before the model)")


def _cpu() -> str:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    features = [f for f in ("avx512_bf16", "amx_tile", "avx512f", "avx2") if f" {f}" in flags]
    return ", ".join(features[:2]) or "no AVX2"


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
