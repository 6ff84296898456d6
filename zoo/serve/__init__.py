"""`zoo serve`: an export (or a run) behind HTTP, with the answers `zoo predict` gives.

    from zoo.serve import create_app
    app = create_app("exports/my-run/model.onnx")      # a FastAPI app to mount in your own ASGI app

zoo.serve.app builds the app (endpoints, limits, errors), zoo.serve.batching groups concurrent
requests into batches, zoo.serve.page is the page at `/`. Needs `pip install 'zoo[serve]'`.
"""

from __future__ import annotations

from typing import Any


def create_app(model: str, **options: Any):
    """The FastAPI app serving ``model`` (an export file, a run folder, a run name or "latest")."""
    from zoo.serve.app import create_app as build

    return build(model, **options)


def serve(model: str, **options: Any) -> None:
    """Run the server (uvicorn) until SIGTERM / Ctrl-C; in-flight requests finish first."""
    from zoo.serve.app import run_server

    run_server(model, **options)
