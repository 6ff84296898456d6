"""zoo.predict(): top-k labels from a run, a checkpoint or any export, for files, folders and globs.

Preprocessing and class names always come from the model file's own metadata, never from guesses.
Results come back in the order the images were given; unreadable images are reported, not fatal.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.errors import ZooError
from zoo.runs import CheckpointMeta, find_run


@dataclass
class Predictor:
    """Probabilities for a batch, and the metadata that says how to preprocess and label."""

    run: Callable[[Any], np.ndarray]  # logits for a batch (see ``input``)
    meta: CheckpointMeta
    source: Path
    kind: str  # checkpoint, or the export format's name
    input: str = "tensor"  # "tensor": preprocessed (N, 3, H, W); "uint8": decoded images, preprocessing inside
    static_batch: int | None = None

    def probabilities(self, batch) -> torch.Tensor:
        if self.input == "uint8":  # one decoded image at a time: images differ in size
            logits = np.concatenate([np.asarray(self.run(np.asarray(image)[None])) for image in batch])
        elif self.static_batch:
            from zoo.exporter.formats import LoadedExport
            from zoo.exporter.parity import run_batches

            logits = run_batches(LoadedExport(self.run, self.meta, static_batch=self.static_batch), batch, len(batch))
        else:
            logits = self.run(batch)
        logits = torch.from_numpy(np.asarray(logits, dtype=np.float32))
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=1)

    @property
    def multi_label(self) -> bool:
        """Several labels per image: a sigmoid per class, labels where the probability reaches the threshold."""
        return self.meta.task == "multi-label"

    def answers(self, inputs, k: int, threshold: float | str | None = None) -> list[dict[str, Any]]:
        """Transformed images (``transform()``'s outputs) -> for each {"top": the k most probable labels} and,
        for a multi-label model, {"labels": every label at or above the threshold, most probable first}: the
        one answer predict, eval and the server give."""
        batch = list(inputs) if self.input == "uint8" else torch.stack(list(inputs))
        probs = self.probabilities(batch)
        values, indices = probs.topk(min(k, probs.shape[1]), dim=1)
        classes = self.meta.classes
        out = [{"top": [{"label": classes[c], "index": c, "prob": round(v, 6)} for v, c in zip(vals, idxs)]}
               for vals, idxs in zip(values.tolist(), indices.tolist())]
        if self.multi_label:
            limits = torch.as_tensor(label_thresholds(self.meta, threshold), dtype=probs.dtype)
            for answer, row in zip(out, probs):
                chosen = [int(c) for c in torch.argsort(row, descending=True, stable=True) if row[c] >= limits[c]]
                answer["labels"] = [{"label": classes[c], "index": c, "prob": round(float(row[c]), 6)} for c in chosen]
        return out

    def transform(self):
        """What predict applies to each decoded image: nothing for a file that preprocesses itself."""
        if self.input == "uint8":
            return lambda image: np.asarray(image)
        return self.meta.preprocessing.eval_transform()


def label_thresholds(meta: CheckpointMeta, threshold: float | str | None = None) -> list[float]:
    """A multi-label model's threshold per class: ``threshold`` for all, "tuned" for the per-class ones tuned
    on validation (saved with the checkpoint), None for the model's own (its --threshold, usually 0.5)."""
    if threshold == "tuned":
        if not meta.thresholds:
            raise ZooError("this model has no tuned thresholds (only multi-label runs save them); pass a number")
        return list(meta.thresholds)
    value = meta.threshold if threshold is None else threshold
    try:
        value = float(value)
    except ValueError:
        raise ZooError(f"--threshold {threshold!r}: pass a probability such as 0.5, or tuned") from None
    if not 0 < value < 1:
        raise ZooError(f"--threshold {value:g} must be between 0 and 1 (or tuned)")
    return [value] * len(meta.classes)


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
    """A Predictor for any file zoo writes: run folder, checkpoint, or an export of any registered format."""
    from zoo.exporter.formats import format_for_path

    path = resolve_model_file(model_file)
    fmt = format_for_path(path) if path.is_file() and path.suffix != ".safetensors" else None
    if fmt is not None:
        from zoo.exporter.formats import check_recorded_hashes

        check_recorded_hashes(path)
        loaded = fmt.load(path)
        return Predictor(loaded.run, loaded.meta, path, fmt.name, loaded.input, loaded.static_batch)
    if path.is_file() and path.suffix != ".safetensors":
        raise ZooError(f"{path} is no file zoo knows: pass a run folder, a .safetensors checkpoint or a file "
                       "`zoo export` wrote (`zoo export --list-formats` shows them)")
    return _checkpoint_predictor(path, device)


def _checkpoint_predictor(path: Path, device: str) -> Predictor:
    """A run folder or .safetensors: the model rebuilt from the registry, on ``device``."""
    from zoo.engine.parts import pick_device
    from zoo.exporter.loading import load_checkpoint

    loaded = load_checkpoint(checkpoint=path)
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


PIXELS_IN_FLIGHT = 80_000_000  # decoded at once across the threads: one 64 MP photo takes ~1 GB while resized


def decoded_batches(files: Sequence[Path], transform, batch_size: int) -> Iterator[list[tuple[int, Any]]]:
    """Chunks of (index, tensor or the reason it could not be read), decoded by threads (PIL frees the GIL).
    Threads share a pixel budget (each file's header says its size), so sixteen huge photos are decoded
    one after another, not all at once."""
    from zoo.data.decode import BadImageError, decode_rgb

    budget = PixelBudget(PIXELS_IN_FLIGHT)

    def load(index: int) -> tuple[int, Any]:
        try:
            with budget.hold(declared_pixels(files[index])):
                return index, transform(decode_rgb(files[index]))
        except BadImageError as exc:
            return index, str(exc)

    with ThreadPoolExecutor(max_workers=4) as pool:
        for start in range(0, len(files), batch_size):
            yield list(pool.map(load, range(start, min(start + batch_size, len(files)))))


class PixelBudget:
    """At most ``limit`` pixels held by the threads together (a larger image waits until it is alone)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0
        self.changed = threading.Condition()

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        pixels = min(pixels, self.limit)
        with self.changed:
            self.changed.wait_for(lambda: self.used + pixels <= self.limit)
            self.used += pixels
        try:
            yield
        finally:
            with self.changed:
                self.used -= pixels
                self.changed.notify_all()


def declared_pixels(path: Path) -> int:
    """Width x height from the file's header (no pixel decoded); 0 when it has none (decode says why)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.width * image.height
    except Exception:  # noqa: BLE001 - an unreadable file is reported by the decoder
        return 0


def predict(model_file: str | Path, images: list[str | Path] | str | Path, top_k: int = 5, batch_size: int = 16,
            device: str = "auto", output: str | Path | None = None,
            threshold: float | str | None = None) -> list[dict[str, Any]]:
    """[{"image": path, "top": [{"label", "index", "prob"}, ...]}, ...] in input order; an unreadable
    image gets {"image", "error", "top": []}. A multi-label model adds "labels": those at or above
    ``threshold`` (see label_thresholds). ``output`` (.csv or .jsonl) also writes them to a file."""
    if output is not None:
        check_predictions_path(output)
    predictor = load_predictor(model_file, device)
    if predictor.multi_label:
        label_thresholds(predictor.meta, threshold)  # a wrong --threshold says so before any image is read
    files = expand_inputs([images] if isinstance(images, (str, Path)) else images)
    if not files:
        raise ZooError("no images found to predict on")
    if batch_size < 1:
        raise ZooError(f"--batch-size {batch_size} must be at least 1")
    results: list[dict[str, Any]] = [{}] * len(files)
    for chunk in decoded_batches(files, predictor.transform(), batch_size):
        good = [(i, x) for i, x in chunk if not isinstance(x, str)]
        for i, reason in chunk:
            if isinstance(reason, str):
                results[i] = {"image": str(files[i]), "error": reason, "top": [],
                              **({"labels": []} if predictor.multi_label else {})}
        if not good:
            continue
        for (i, _), answer in zip(good, predictor.answers([x for _, x in good], top_k, threshold)):
            results[i] = {"image": str(files[i]), **answer}
    if output is not None:
        write_predictions(results, output, top_k)
    return results


def write_predictions(results: list[dict[str, Any]], path: str | Path, top_k: int) -> None:
    """One row per image: .jsonl (the result objects) or .csv (image, label_1, prob_1, ..., error; for a
    multi-label model also "labels": the predicted labels, space-separated, as the csv layout reads them)."""
    from zoo.files import atomic_write_text

    path = check_predictions_path(path)
    if path.suffix == ".jsonl":
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in results))
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    multi = any("labels" in r for r in results)
    writer.writerow(["image", *(["labels"] if multi else []),
                     *[f"{kind}_{k}" for k in range(1, top_k + 1) for kind in ("label", "prob")], "error"])
    for r in results:
        cells = [x for t in r["top"] for x in (spreadsheet_safe(t["label"]), t["prob"])]
        labels = [spreadsheet_safe(" ".join(t["label"] for t in r.get("labels", [])))] if multi else []
        writer.writerow([spreadsheet_safe(r["image"]), *labels, *cells, *[""] * (2 * top_k - len(cells)),
                         spreadsheet_safe(r.get("error", ""))])
    atomic_write_text(path, buffer.getvalue())


def check_predictions_path(path: str | Path) -> Path:
    """--output names a .csv or .jsonl file (checked before any image is read)."""
    path = Path(path)
    if path.is_dir():
        raise ZooError(f"--output {path} is a folder; name a .csv or .jsonl file to write the predictions to")
    if path.suffix not in (".csv", ".jsonl"):
        raise ZooError(f"--output {path}: write predictions to a .csv or a .jsonl file")
    return path


def spreadsheet_safe(text: str) -> str:
    """A cell a spreadsheet shows as text: one starting with = + - @ (or tab, CR) would run as a formula,
    so it gets a leading apostrophe (OWASP's CSV-injection advice)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
