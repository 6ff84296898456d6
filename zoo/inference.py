"""zoo.predict(): top-k labels from a run, a checkpoint or any export, for files, folders and globs.

Preprocessing and class names always come from the model file's own metadata, never from guesses.
Results come back in the order the images were given; unreadable images are reported, not fatal.
"""

from __future__ import annotations

import csv
import glob
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.errors import ZooError
from zoo.runs import CheckpointMeta, find_run


@dataclass
class Predictor:
    """Logits for a preprocessed batch, and the metadata that says how to preprocess and label."""

    run: Callable[[torch.Tensor], np.ndarray]  # (N, 3, H, W) float -> (N, classes) logits
    meta: CheckpointMeta
    source: Path
    kind: str  # checkpoint, onnx, torchscript, ...

    def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        logits = torch.from_numpy(np.asarray(self.run(batch), dtype=np.float32))
        return torch.softmax(logits, dim=1)


def resolve_model_file(model_file: str | Path) -> Path:
    """A path as given, else a run name or 'latest' (runs/<name>)."""
    path = Path(model_file)
    if path.exists():
        return path
    try:
        return find_run(str(model_file)).final
    except ZooError:
        raise ZooError(f"model file {path} does not exist; pass a run folder (or a run name, or latest), a "
                       ".safetensors checkpoint, a .onnx or a TorchScript .pt that `zoo export` wrote") from None


def load_predictor(model_file: str | Path, device: str = "auto") -> Predictor:
    """A Predictor for any file zoo writes: run folder, checkpoint, .onnx, TorchScript .pt."""
    path = resolve_model_file(model_file)
    if path.suffix == ".onnx":
        import onnx

        from zoo.exporter.parity import onnx_runner

        try:
            props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        except Exception as exc:  # noqa: BLE001 - protobuf raises its own DecodeError for a damaged file
            raise ZooError(f"{path} is not a readable ONNX model ({type(exc).__name__}); export it again") from exc
        if "zoo.meta" not in props:
            raise ZooError(f"{path} has no zoo metadata (zoo.meta); export it with `zoo export`")
        meta = CheckpointMeta.from_dict(json.loads(props["zoo.meta"]), f"metadata of {path}")
        return Predictor(onnx_runner(path), meta, path, "onnx")
    if path.suffix == ".pt":
        from zoo.exporter.parity import load_torchscript, torchscript_runner

        files = {"zoo.json": ""}
        try:
            module = load_torchscript(path, files)
        except Exception as exc:  # noqa: BLE001 - torch.jit.load fails in many ways on a damaged file
            raise ZooError(f"{path} is not a readable TorchScript model ({type(exc).__name__}); export it again") from exc
        if not files["zoo.json"]:
            raise ZooError(f"{path} has no zoo metadata (zoo.json); export it with `zoo export`")
        meta = CheckpointMeta.from_dict(json.loads(files["zoo.json"]), f"metadata of {path}")
        return Predictor(torchscript_runner(module), meta, path, "torchscript")
    return _checkpoint_predictor(path, device)


def _checkpoint_predictor(path: Path, device: str) -> Predictor:
    from zoo.engine.parts import pick_device
    from zoo.exporter.loading import load_checkpoint

    loaded = load_checkpoint(checkpoint=path) if path.suffix == ".safetensors" or path.is_dir() else \
        load_checkpoint(run=path)
    target = pick_device(device)
    model = loaded.model.to(target)

    def run(batch: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return model(batch.to(target)).float().cpu().numpy()

    return Predictor(run, loaded.meta, loaded.checkpoint, "checkpoint")


def expand_inputs(items: Iterable[str | Path]) -> list[Path]:
    """Image files in the order given: files as they are, folders walked (sorted), quoted globs expanded."""
    from zoo.data.decode import is_candidate

    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and is_candidate(p))
        elif path.is_file():
            files.append(path)
        elif glob.has_magic(str(item)):
            matched = sorted(Path(p) for p in glob.glob(str(item), recursive=True))
            if not matched:
                raise ZooError(f"no file matches {item}")
            files += [p for p in matched if p.is_file() and is_candidate(p)]
        else:
            raise ZooError(f"image path {path} does not exist")
    return files


def decoded_batches(files: Sequence[Path], transform, batch_size: int) -> Iterator[list[tuple[int, Any]]]:
    """Chunks of (index, tensor or the reason it could not be read), decoded by threads (PIL frees the GIL)."""
    from zoo.data.decode import BadImageError, decode_rgb

    def load(index: int) -> tuple[int, Any]:
        try:
            return index, transform(decode_rgb(files[index]))
        except BadImageError as exc:
            return index, str(exc)

    with ThreadPoolExecutor(max_workers=4) as pool:
        for start in range(0, len(files), batch_size):
            yield list(pool.map(load, range(start, min(start + batch_size, len(files)))))


def predict(model_file: str | Path, images: list[str | Path] | str | Path, top_k: int = 5, batch_size: int = 16,
            device: str = "auto", output: str | Path | None = None) -> list[dict[str, Any]]:
    """[{"image": path, "top": [{"label", "index", "prob"}, ...]}, ...] in input order; an unreadable
    image gets {"image", "error", "top": []}. ``output`` (.csv or .jsonl) also writes them to a file."""
    predictor = load_predictor(model_file, device)
    files = expand_inputs([images] if isinstance(images, (str, Path)) else images)
    if not files:
        raise ZooError("no images found to predict on")
    if batch_size < 1:
        raise ZooError(f"--batch-size {batch_size} must be at least 1")
    classes = predictor.meta.classes
    results: list[dict[str, Any]] = [{}] * len(files)
    for chunk in decoded_batches(files, predictor.meta.preprocessing.eval_transform(), batch_size):
        good = [(i, x) for i, x in chunk if isinstance(x, torch.Tensor)]
        for i, reason in chunk:
            if not isinstance(reason, torch.Tensor):
                results[i] = {"image": str(files[i]), "error": reason, "top": []}
        if not good:
            continue
        probs = predictor.probabilities(torch.stack([x for _, x in good]))
        values, indices = probs.topk(min(top_k, probs.shape[1]), dim=1)
        for (i, _), vals, idxs in zip(good, values.tolist(), indices.tolist()):
            results[i] = {"image": str(files[i]), "top": [
                {"label": classes[c], "index": c, "prob": round(v, 6)} for v, c in zip(vals, idxs)]}
    if output is not None:
        write_predictions(results, output, top_k)
    return results


def write_predictions(results: list[dict[str, Any]], path: str | Path, top_k: int) -> None:
    """One row per image: .jsonl (the result objects) or .csv (image, label_1, prob_1, ..., error)."""
    from zoo.files import atomic_write_text

    path = Path(path)
    if path.suffix == ".jsonl":
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in results))
        return
    if path.suffix != ".csv":
        raise ZooError(f"--output {path}: write predictions to a .csv or a .jsonl file")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["image", *[f"{kind}_{k}" for k in range(1, top_k + 1) for kind in ("label", "prob")], "error"])
    for r in results:
        cells = [x for t in r["top"] for x in (t["label"], t["prob"])]
        writer.writerow([r["image"], *cells, *[""] * (2 * top_k - len(cells)), r.get("error", "")])
    atomic_write_text(path, buffer.getvalue())
