"""zoo.predict(): top-k labels from a run folder, checkpoint, .onnx or TorchScript .pt.

Preprocessing and class names always come from the file's own metadata, never from guesses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.errors import ZooError
from zoo.runs import CheckpointMeta


def load_predictor(model_file: str | Path):
    """(run(batch) -> logits ndarray, metadata) for any file zoo writes."""
    path = Path(model_file)
    if not path.exists():
        raise ZooError(f"model file {path} does not exist; pass a run folder, a .safetensors checkpoint, "
                       "a .onnx or a TorchScript .pt that `zoo export` wrote")
    if path.suffix == ".onnx":
        import onnx

        from zoo.exporter.parity import onnx_runner

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        if "zoo.meta" not in props:
            raise ZooError(f"{path} has no zoo metadata (zoo.meta); export it with `zoo export`")
        return onnx_runner(path), CheckpointMeta.from_dict(json.loads(props["zoo.meta"]), f"metadata of {path}")
    if path.suffix == ".pt" and _is_torchscript(path):
        from zoo.exporter.parity import load_torchscript, torchscript_runner

        files = {"zoo.json": ""}
        module = load_torchscript(path, files)
        if not files["zoo.json"]:
            raise ZooError(f"{path} has no zoo metadata (zoo.json); export it with `zoo export`")
        return torchscript_runner(module), CheckpointMeta.from_dict(json.loads(files["zoo.json"]), f"metadata of {path}")
    from zoo.exporter.loading import load_checkpoint

    loaded = load_checkpoint(checkpoint=path) if path.suffix == ".safetensors" or path.is_dir() else load_checkpoint(run=path)
    model = loaded.model

    def run(batch: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return model(batch).numpy()

    return run, loaded.meta


def _is_torchscript(path: Path) -> bool:
    import zipfile

    return zipfile.is_zipfile(path) and any(n.endswith("constants.pkl") or n.endswith("code/") or "/code/" in n
                                            for n in zipfile.ZipFile(path).namelist())


def predict(model_file: str | Path, images: list[str | Path] | str | Path, top_k: int = 5,
            batch_size: int = 16) -> list[dict[str, Any]]:
    """[{"image": path, "top": [{"label", "index", "prob"}, ...]}, ...] for image files or folders."""
    from zoo.data.decode import BadImageError, decode_rgb, is_candidate
    from zoo.data.transforms import eval_transform

    run, meta = load_predictor(model_file)
    transform = eval_transform(meta.preprocessing)
    files: list[Path] = []
    for item in [images] if isinstance(images, (str, Path)) else images:
        item = Path(item)
        if item.is_dir():
            files += sorted(p for p in item.rglob("*") if p.is_file() and is_candidate(p))
        elif item.is_file():
            files.append(item)
        else:
            raise ZooError(f"image path {item} does not exist")
    results = []
    for start in range(0, len(files), batch_size):
        chunk, tensors = [], []
        for f in files[start:start + batch_size]:
            try:
                tensors.append(transform(decode_rgb(f)))
                chunk.append(f)
            except BadImageError as exc:
                results.append({"image": str(f), "error": str(exc), "top": []})
        if not tensors:
            continue
        logits = run(torch.stack(tensors))
        probs = torch.softmax(torch.from_numpy(np.asarray(logits, dtype=np.float32)), dim=1)
        k = min(top_k, probs.shape[1])
        values, indices = probs.topk(k, dim=1)
        for f, vals, idxs in zip(chunk, values.tolist(), indices.tolist()):
            results.append({"image": str(f), "top": [
                {"label": meta.classes[i], "index": i, "prob": round(v, 6)} for v, i in zip(vals, idxs)]})
    if not files:
        raise ZooError("no images found to predict on")
    return results
