"""The FastAPI app: endpoints, upload limits, one-line JSON errors, metrics, the page.

    POST /v1/predict   images as multipart field `file` (repeatable) or one raw image body; ?top_k=5
                       -> the JSON of `zoo predict --json` (a list, one entry per image)
    GET  /v1/model     classes, preprocessing, formats, parity summary, SHA-256 of the served file
    GET  /health       {"status": "ok"}
    GET  /metrics      Prometheus text: requests by status, latency, batch sizes, queue depth
    GET  /             a page to try it in a browser (no external assets)
    GET  /docs         OpenAPI (FastAPI's)

Images are decoded from memory with zoo's rules (EXIF, 16-bit, alpha, the 64-megapixel limit),
never written to disk. A bad upload is a 4xx with {"error": "<one line>"}; the server goes on.
"""

# No `from __future__ import annotations` here: FastAPI reads the handlers' annotations (Request) as objects.
import asyncio
import contextlib
import io
import json
import logging
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

log = logging.getLogger("zoo.serve")
RAW_TYPES = ("image/", "application/octet-stream")


@dataclass(frozen=True)
class ServeOptions:
    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_upload_mb: float = 20.0
    max_images: int = 64  # per request
    body_timeout_s: float = 30.0  # a body that takes longer (a slow-loris client) is refused
    device: str = "cpu"
    decode_threads: int = 4


class RequestError(Exception):
    """A bad request: its status and one line saying what is wrong."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_serve_dependencies() -> None:
    import importlib.util

    missing = [m for m in ("fastapi", "uvicorn", "python_multipart") if importlib.util.find_spec(m) is None]
    if missing:
        raise ZooError(f"zoo serve needs {', '.join(missing)}: pip install 'zoo[serve]'")


def resolve_served(model: str | Path) -> Path:
    """An export file as it is; a run (folder, name or latest): its ONNX export under exports/ when there
    is one, else its best checkpoint (served by PyTorch)."""
    from zoo.runs import find_run

    path = Path(model)
    if path.is_file():
        return path
    try:
        run = find_run(str(model) if not path.is_dir() else path)
    except ZooError:
        raise ZooError(f"nothing to serve at {model}: pass an export file (zoo export writes them), a run folder, "
                       "a run name or latest") from None
    export = Path("exports") / run.name / "model.onnx"
    return export if export.is_file() else run.final


def create_app(model: str | Path, **options: Any):
    check_serve_dependencies()
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

    from zoo.inference import load_predictor
    from zoo.serve.batching import Batcher
    from zoo.serve.metrics import ServeMetrics
    from zoo.serve.page import page_html

    opts = ServeOptions(**options)
    source = resolve_served(model)
    predictor = load_predictor(source, opts.device)
    transform = predictor.transform()
    metrics = ServeMetrics(opts.max_batch)
    batcher = Batcher(predictor, opts.max_batch, opts.max_wait_ms, metrics)
    decoders = ThreadPoolExecutor(max_workers=opts.decode_threads, thread_name_prefix="zoo-decode")
    model_card = describe_model(predictor, source)
    metrics.queue_depth.set_function(lambda: batcher.depth)

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        log.info("serving %s (%s, %d classes)", source, predictor.kind, len(predictor.meta.classes))
        yield
        await batcher.stop()  # SIGTERM: what is queued is answered first
        decoders.shutdown(wait=True)

    app = FastAPI(title="zoo serve", version=model_card["zoo_version"], lifespan=lifespan,
                  description=f"{predictor.meta.model} ({len(predictor.meta.classes)} classes) from {source.name}")

    @app.middleware("http")
    async def measure(request: Request, call_next):
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as exc:  # noqa: BLE001 - never a bare 500 page: one JSON line
            log.exception("unexpected error")
            response = JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=500)
        if request.url.path == "/v1/predict":
            metrics.requests.labels(status=str(response.status_code)).inc()
            metrics.latency.observe(time.perf_counter() - started)
        return response

    @app.exception_handler(RequestError)
    async def bad_request(request: Request, exc: RequestError):
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}"}, status_code=422)

    @app.post("/v1/predict", summary="Top-k labels for one or more images")
    async def predict(request: Request, top_k: int = 5):
        if not 1 <= top_k <= 1000:
            raise RequestError(422, f"top_k {top_k} must be from 1 to 1000")
        uploads = parse_uploads(await read_body(request, opts), request.headers.get("content-type", ""), opts)
        loop = asyncio.get_running_loop()
        decoded = await asyncio.gather(*(loop.run_in_executor(decoders, decode, data, transform)
                                         for _, data in uploads))
        good = [(i, x) for i, x in enumerate(decoded) if not isinstance(x, str)]
        if not good:
            raise RequestError(400, f"{uploads[0][0]}: {decoded[0]}" if len(uploads) == 1 else
                               f"none of the {len(uploads)} images could be read; {uploads[0][0]}: {decoded[0]}")
        answers = await batcher.submit([x for _, x in good], top_k)
        results: list[dict[str, Any]] = [{"image": name, "error": x, "top": []} if isinstance(x, str) else {}
                                         for (name, _), x in zip(uploads, decoded)]
        for (i, _), answer in zip(good, answers):
            results[i] = {"image": uploads[i][0], **answer}
        return results

    @app.get("/v1/model", summary="What is served: classes, preprocessing, formats, parity")
    async def model_info():
        return model_card

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus():
        return PlainTextResponse(metrics.text(), media_type="text/plain; version=0.0.4")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse(page_html(model_card))

    return app


async def read_body(request, opts: ServeOptions) -> bytes:
    """The whole body in memory, refused past --max-upload-mb (413) or when it arrives too slowly (408)."""
    limit = int(opts.max_upload_mb * 1e6)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"the upload is {int(declared) / 1e6:.1f} MB, more than the server's "
                                f"--max-upload-mb {opts.max_upload_mb:g}")
    chunks, size = [], 0

    async def collect():
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(413, f"the upload is more than the server's --max-upload-mb {opts.max_upload_mb:g}")
            chunks.append(chunk)

    try:
        await asyncio.wait_for(collect(), opts.body_timeout_s)
    except asyncio.TimeoutError:
        raise RequestError(408, f"the upload did not arrive within {opts.body_timeout_s:g} s; send it again") from None
    if not size:
        raise RequestError(400, "the request has no image: send multipart field 'file' or an image body")
    return b"".join(chunks)


def parse_uploads(body: bytes, content_type: str, opts: ServeOptions) -> list[tuple[str, bytes]]:
    """(name, bytes) per image: the multipart `file` fields, or the raw body."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        files = [(name or f"file{i + 1}", data) for i, (field, name, data) in enumerate(parse_multipart(body, content_type))
                 if field == "file"]
        if not files:
            raise RequestError(400, "the form has no field named 'file'; send the image(s) as file=@photo.jpg")
    elif kind.startswith(RAW_TYPES):
        files = [("body", body)]
    else:
        raise RequestError(415, f"content type {kind or '(none)'!r} is not an image; send multipart/form-data with "
                                "field 'file', or the image itself as image/jpeg, image/png, ...")
    if len(files) > opts.max_images:
        raise RequestError(413, f"{len(files)} images in one request, more than the server's --max-images "
                                f"{opts.max_images}; split them over several requests")
    return files


def parse_multipart(body: bytes, content_type: str) -> list[tuple[str, str | None, bytes]]:
    """(field name, file name, bytes) of each part, parsed in memory (python-multipart's parser)."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise RequestError(400, "multipart/form-data without a boundary; let the HTTP client build the form")
    parts: list[tuple[str, str | None, bytes]] = []
    state: dict[str, Any] = {}

    def on_part_begin():
        state.update(headers={}, data=bytearray(), field=b"", value=b"")

    def on_header_field(data, start, end):
        state["field"] += data[start:end]

    def on_header_value(data, start, end):
        state["value"] += data[start:end]

    def on_header_end():
        state["headers"][state["field"].decode("latin-1").lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_part_data(data, start, end):
        state["data"] += data[start:end]

    def on_part_end():
        _, disposition = parse_options_header(state["headers"].get("content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        filename = disposition.get(b"filename")
        parts.append((name, filename.decode("utf-8", "replace") if filename else None, bytes(state["data"])))

    parser = MultipartParser(boundary, {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                                        "on_header_value": on_header_value, "on_header_end": on_header_end,
                                        "on_part_data": on_part_data, "on_part_end": on_part_end})
    try:
        parser.write(body)
        parser.finalize()
    except Exception as exc:  # noqa: BLE001 - a malformed form is the client's
        raise RequestError(400, f"the multipart form is malformed ({exc})") from None
    return parts


def decode(data: bytes, transform) -> Any:
    """The model's input for an upload, or the reason it cannot be read (zoo's decoding rules)."""
    from zoo.data.decode import BadImageError, decode_rgb

    try:
        return transform(decode_rgb(io.BytesIO(data)))
    except BadImageError as exc:
        return str(exc)


def describe_model(predictor, source: Path) -> dict[str, Any]:
    """What GET /v1/model answers: enough for a client to know what it talks to."""
    import zoo
    from zoo.files import read_json
    from zoo.hub import file_digest

    meta = predictor.meta
    folder = source if source.is_dir() else source.parent
    served = source if source.is_file() else Path(predictor.source)
    card: dict[str, Any] = {
        "model": meta.model, "run": meta.run, "file": served.name, "kind": predictor.kind,
        "sha256": file_digest(served), "classes": meta.classes, "preprocessing": meta.preprocessing.to_dict(),
        "input": predictor.input, "zoo_version": zoo.__version__, "formats": {}, "parity": {},
    }
    try:
        exported = read_json(folder / "model.json", "export metadata") if (folder / "model.json").is_file() else {}
        parity = read_json(folder / "parity.json", "parity report") if (folder / "parity.json").is_file() else {}
    except ZooError:
        exported, parity = {}, {}
    card["formats"] = {name: record.get("path") for name, record in (exported.get("files") or {}).items()}
    card["parity"] = {name: {k: report.get(k) for k in ("passed", "images", "top1_agreement", "max_prob_diff")}
                      for name, report in parity.items() if isinstance(report, dict)}
    return card


def run_server(model: str, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, **options: Any) -> None:
    """uvicorn in the foreground; SIGTERM or Ctrl-C finishes in-flight requests and returns."""
    check_serve_dependencies()
    import uvicorn

    resolve_served(model)  # a wrong path is one line before uvicorn starts
    if workers > 1:  # uvicorn's own processes, each building the app from these settings
        os.environ["ZOO_SERVE"] = json.dumps({"model": str(model), **asdict(ServeOptions(**options))})
        uvicorn.run("zoo.serve.app:app_from_environment", factory=True, host=host, port=port, workers=workers,
                    log_level="warning")
        return
    config = uvicorn.Config(create_app(model, **options), host=host, port=port, log_level="warning")
    _GracefulServer(config).run()


def _graceful_server_class():
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """uvicorn's server, but a SIGTERM/SIGINT it handled (requests in flight answered) ends the process
        with exit code 0; uvicorn re-raises the signal after shutting down, which a supervisor reads as a crash."""

        @contextlib.contextmanager
        def capture_signals(self):
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return GracefulServer


def _GracefulServer(config):  # noqa: N802 - a class, made when uvicorn is importable
    return _graceful_server_class()(config)


def app_from_environment():
    settings = json.loads(os.environ["ZOO_SERVE"])
    return create_app(settings.pop("model"), **settings)
