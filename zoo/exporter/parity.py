"""The parity gate: exported models must give eager PyTorch's logits on real, preprocessed images."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.errors import ExportError
from zoo.runs import CONFIG, CheckpointMeta, RunFolder

BATCH_SIZES = (1, 8, 3)  # 3: an odd size that exercises the dynamic batch axis


def load_eval_images(meta: CheckpointMeta, run: RunFolder | None, images: str | Path | None,
                     limit: int) -> tuple[torch.Tensor, str]:
    """Preprocessed images (N, 3, H, W): --images, else the run's validation split."""
    from zoo.data.decode import decode_rgb, is_candidate
    from zoo.data.transforms import eval_transform

    transform = eval_transform(meta.preprocessing)
    if images is not None:
        folder = Path(images)
        files = sorted(p for p in (folder.rglob("*") if folder.is_dir() else [folder]) if p.is_file() and is_candidate(p))
        if not files:
            raise ExportError(f"no images found in {folder} for the parity check")
        tensors = [transform(decode_rgb(p)) for p in files[:limit]]
        return torch.stack(tensors), str(folder)
    try:
        dataset = _training_dataset(meta, run)
    except Exception as exc:  # noqa: BLE001 - any data problem: ask for --images instead
        raise ExportError(
            f"cannot open the run's validation data for the parity check ({exc}); pass --images DIR"
        ) from exc
    source = dataset.splits.get(meta.dataset.get("eval_split", ""), None) or dataset.eval
    count = min(limit, len(source))
    # spread over the split so several classes are covered
    picks = np.linspace(0, len(source) - 1, count).astype(int) if count else []
    return torch.stack([transform(source.load(int(i))) for i in picks]), f"{dataset.name}/{dataset.eval_split_name}"


def _training_dataset(meta: CheckpointMeta, run: RunFolder | None):
    """The dataset the run trained on, opened with the run's own options so the split is the same."""
    from zoo.data.api import create_dataset

    config = run.read_config() if run is not None and (run.final / CONFIG).is_file() else {}
    name = config.get("data") or meta.dataset.get("name", "")
    return create_dataset(name, **{k: config[k] for k in ("val_ratio", "seed", "data_root") if k in config})


def compare(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    diff = np.abs(reference - candidate)
    return {
        "max_abs_diff": float(diff.max()),
        "max_rel_diff": float((diff / np.maximum(np.abs(reference), 1e-6)).max()),
        "top1_agreement": float((reference.argmax(1) == candidate.argmax(1)).mean()),
    }


def run_parity(model, inputs: torch.Tensor, runners: dict[str, Any], atol: float,
               batch_sizes: tuple[int, ...] = BATCH_SIZES) -> dict[str, dict[str, Any]]:
    """For each format, worst-case differences to eager fp32 (TF32 off) over all batch sizes."""
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.no_grad():
            reference = model.float().eval()(inputs.float()).numpy()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    report = {}
    for name, run in runners.items():
        worst = {"max_abs_diff": 0.0, "max_rel_diff": 0.0, "top1_agreement": 1.0}
        per_batch = {}
        for bs in batch_sizes:
            outputs = np.concatenate([run(inputs[i:i + bs]) for i in range(0, len(inputs), bs)])
            stats = compare(reference, outputs)
            per_batch[str(min(bs, len(inputs)))] = stats
            worst = {"max_abs_diff": max(worst["max_abs_diff"], stats["max_abs_diff"]),
                     "max_rel_diff": max(worst["max_rel_diff"], stats["max_rel_diff"]),
                     "top1_agreement": min(worst["top1_agreement"], stats["top1_agreement"])}
        passed = worst["max_abs_diff"] <= atol and worst["top1_agreement"] == 1.0
        report[name] = {"passed": passed, **worst, "atol": atol, "images": len(inputs),
                        "batch_sizes": [min(bs, len(inputs)) for bs in batch_sizes],  # as run, with few images
                        "per_batch_size": per_batch}
    return report


def onnx_runner(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {name: batch.numpy()})[0]


def load_torchscript(path: Path, extra_files: dict[str, str] | None = None) -> torch.jit.ScriptModule:
    """torch.jit.load, quiet about its deprecation: TorchScript is an export format users ask for."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.load.*", category=FutureWarning)
        return torch.jit.load(str(path), map_location="cpu", _extra_files=extra_files or {}).eval()


def torchscript_runner(path_or_module: Path | torch.jit.ScriptModule):
    module = path_or_module if isinstance(path_or_module, torch.jit.ScriptModule) else load_torchscript(path_or_module)

    def run(batch: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return module(batch).numpy()

    return run


RUNNERS = {"onnx": onnx_runner, "torchscript": torchscript_runner}
