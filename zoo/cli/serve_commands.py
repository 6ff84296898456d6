"""zoo serve."""

from __future__ import annotations

import typer

from zoo.cli.app import app


@app.command(
    "serve",
    short_help="An export behind HTTP   e.g. zoo serve latest",
    help="Serve MODEL (an export file, a run folder, a run name or latest: its ONNX export when there is one) over "
    "HTTP: POST /v1/predict gives what `zoo predict --json` gives; GET /v1/model, /health, /metrics, /docs, and a "
    "page at / to try it in a browser. Ctrl-C or SIGTERM finishes the requests in flight, then stops."
    "\n\nExamples:\n\n  zoo serve latest\n\n  zoo serve exports/run/model.onnx --port 8080 --max-batch 64\n\n"
    "  curl -F file=@photo.jpg http://127.0.0.1:8000/v1/predict",
)
def serve_command(
    model: str = typer.Argument(..., metavar="MODEL", help="export file, run folder, run name or latest"),
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0: every interface)"),
    port: int = typer.Option(8000, min=1, max=65535),
    max_batch: int = typer.Option(32, min=1, max=4096, help="images per model call, gathered from concurrent requests"),
    max_wait_ms: float = typer.Option(5.0, min=0, max=10_000, help="how long a request waits for others to batch with"),
    max_upload_mb: float = typer.Option(20.0, min=0.001, help="largest request body (413 above)"),
    max_images: int = typer.Option(64, min=1, help="images in one request (413 above)"),
    body_timeout: float = typer.Option(30.0, min=0.1, help="seconds an upload may take to arrive (408 after)"),
    workers: int = typer.Option(1, min=1, max=64, help="server processes (each loads the model)"),
    device: str = typer.Option("cpu", help="cpu | cuda (checkpoints; ONNX runs on onnxruntime's CPU provider)"),
) -> None:
    from zoo.serve import serve
    from zoo.serve.app import check_serve_dependencies

    check_serve_dependencies()
    typer.echo(f"serving {model} on http://{host}:{port} (Ctrl-C stops)", err=True)
    serve(model, host=host, port=port, workers=workers, max_batch=max_batch, max_wait_ms=max_wait_ms,
          max_upload_mb=max_upload_mb, max_images=max_images, body_timeout_s=body_timeout, device=device)
