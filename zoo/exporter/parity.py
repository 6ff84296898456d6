"""The parity gate: an export must give eager fp32 PyTorch's answers on real, preprocessed images.

Gates (stated in parity.json):
  logits  every |logit difference| <= atol + rtol * max|reference logit|, and the same top-1 everywhere
          (rtol scales the bound to the model: logits of ~0.005 are not tested by 1e-4 alone);
  top1    top-1 agreement >= 0.99 (int8); differences of probabilities reported, not gated;
  and for a file with preprocessing embedded, fed the decoded uint8 images: probabilities within
  1e-3 of `zoo predict`'s and the same top-1 (int8 embedded: agreement >= 0.99).
A multi-label model is held to the same gates with sigmoid probabilities, and "the same top-1" becomes
"the same label set" at the model's threshold (label_set_agreement).
The reference runs in fp32 with TF32 off (TF32 alone breaks parity at 1e-4 on GPUs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.errors import ExportError
from zoo.exporter.formats import LoadedExport
from zoo.runs import CONFIG, CheckpointMeta, RunFolder

BATCH_SIZES = (1, 8, 3)  # 3: an odd size that exercises the dynamic batch axis
PROB_TOL = 1e-3  # embedded preprocessing vs zoo predict
MIN_AGREEMENT = 0.99  # the top1 gate


@dataclass
class EvalImages:
    """The parity images: as decoded by zoo's reader (uint8 RGB, their own sizes) and preprocessed."""

    decoded: list[np.ndarray]
    tensors: torch.Tensor  # (N, 3, H, W), the evaluation transform applied
    source: str


def load_eval_images(meta: CheckpointMeta, run: RunFolder | None, images: str | Path | None,
                     limit: int | None) -> EvalImages:
    """--images DIR, else images spread over the run's validation split; ``limit`` 0 or None: all of them."""
    from zoo.data.decode import decode_rgb, is_candidate

    transform = meta.preprocessing.eval_transform()
    if images is not None:
        folder = Path(images)
        files = sorted(p for p in (folder.rglob("*") if folder.is_dir() else [folder]) if p.is_file() and is_candidate(p))
        if not files:
            raise ExportError(f"no images found in {folder} for the parity check")
        pictures, source = [decode_rgb(p) for p in files[:limit or None]], str(folder)
    else:
        try:
            dataset = training_dataset(meta, run)
        except Exception as exc:  # noqa: BLE001 - any data problem: ask for --images instead
            raise ExportError(
                f"cannot open the run's validation data for the parity check ({exc}); pass --images DIR"
            ) from exc
        split = dataset.splits.get(meta.dataset.get("eval_split", ""), None) or dataset.eval
        count = min(limit or len(split), len(split))
        picks = np.linspace(0, len(split) - 1, count).astype(int) if count else []  # several classes covered
        pictures, source = [split.load(int(i)) for i in picks], f"{dataset.name}/{dataset.eval_split_name}"
    return EvalImages([np.asarray(p) for p in pictures], torch.stack([transform(p) for p in pictures]), source)


def calibration_images(meta: CheckpointMeta, run: RunFolder | None, images: str | Path | None, limit: int,
                       decoded: bool):
    """Training images for int8 calibration (--images if given): preprocessed tensors, or decoded uint8 images."""
    if images is not None:
        found = load_eval_images(meta, run, images, limit)
    else:
        dataset = training_dataset(meta, run)
        picks = np.random.default_rng(0).permutation(len(dataset.train))[:limit]
        pictures = [dataset.train.load(int(i)) for i in picks]
        transform = meta.preprocessing.eval_transform()
        found = EvalImages([np.asarray(p) for p in pictures], torch.stack([transform(p) for p in pictures]), "train")
    return found.decoded if decoded else found.tensors


def training_dataset(meta: CheckpointMeta, run: RunFolder | None):
    """The dataset the run trained on, opened with the run's own options so the split is the same."""
    from zoo.data.api import create_dataset

    config = run.read_config() if run is not None and (run.final / CONFIG).is_file() else {}
    name = config.get("data") or meta.dataset.get("name", "")
    return create_dataset(name, **{k: config[k] for k in ("val_ratio", "seed", "data_root") if k in config})


def reference_logits(model, inputs: torch.Tensor, device: str = "cpu") -> np.ndarray:
    """Eager fp32 logits with TF32 off (matmul precision "highest"), on ``device``."""
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    precision = torch.get_float32_matmul_precision()
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        with torch.no_grad():
            logits = model.float().eval().to(device)(inputs.float().to(device)).cpu().numpy()
        model.to("cpu")
        return logits
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
        torch.set_float32_matmul_precision(precision)


def run_batches(loaded: LoadedExport, inputs, batch: int) -> np.ndarray:
    """Logits for all inputs, ``batch`` at a time; a static export gets chunks of its size (the last padded)."""
    size = loaded.static_batch or batch
    out = []
    for start in range(0, len(inputs), size):
        chunk = inputs[start:start + size]
        missing = size - len(chunk) if loaded.static_batch else 0
        if missing:
            chunk = torch.cat([chunk, chunk[-1:].expand(missing, *chunk.shape[1:])])
        out.append(np.asarray(loaded.run(chunk))[:size - missing])
    return np.concatenate(out)


def check(model, images: EvalImages, loaded: LoadedExport, gate: str, atol: float, rtol: float,
          batch_sizes: tuple[int, ...] = BATCH_SIZES, device: str = "cpu") -> dict[str, Any]:
    """One export's parity report (the eager reference run on ``device``)."""
    reference = reference_logits(model, images.tensors, device)
    threshold = loaded.meta.threshold if loaded.meta.task == "multi-label" else None

    def compared(outputs: np.ndarray) -> dict[str, float]:
        return compare(reference, outputs, threshold)

    if loaded.input == "uint8":  # preprocessing inside: fed what zoo's reader decoded, one image at a time
        outputs = np.concatenate([np.asarray(loaded.run(image[None])) for image in images.decoded])
        per_batch = {"1": compared(outputs)}
        sizes = [1]
    else:
        if loaded.static_batch:
            batch_sizes = tuple(dict.fromkeys((1, loaded.static_batch)))
        per_batch = {str(min(bs, len(reference))): compared(run_batches(loaded, images.tensors, bs))
                     for bs in batch_sizes}
        sizes = [min(bs, len(reference)) for bs in batch_sizes]
    worst = {key: (min if key.endswith("_agreement") else max)(stats[key] for stats in per_batch.values())
             for key in next(iter(per_batch.values()))}
    max_logit = float(np.abs(reference).max())
    tolerance = atol + rtol * max_logit
    agreement, same, what = (("label_set_agreement", "same label sets", "label-set") if threshold is not None
                             else ("top1_agreement", "same top-1", "top-1"))
    if gate == "top1":
        passed, rule = worst[agreement] >= MIN_AGREEMENT, f"{what} agreement >= {MIN_AGREEMENT}"
    elif loaded.input == "uint8":
        passed = worst[agreement] == 1.0 and worst["max_prob_diff"] <= PROB_TOL
        rule = f"{same} and |probability diff| <= {PROB_TOL} vs zoo predict"
    else:
        passed = worst[agreement] == 1.0 and worst["max_abs_diff"] <= tolerance
        rule = f"{same} and |logit diff| <= atol + rtol * max|logit|"
    return {"passed": bool(passed), "gate": rule, **worst,
            "top1_agreement_lower_bound": wilson_lower_bound(worst[agreement], len(reference)), "atol": atol, "rtol": rtol, "max_abs_logit": max_logit, "tolerance": tolerance,
            "images": len(reference), "batch_sizes": sizes, "per_batch_size": per_batch, "source": images.source,
            "reference": f"eager fp32 on {device}, TF32 off", "matmul_precision": "highest"}


def cross_check(model, images: EvalImages, fmt, path: Path, report: dict[str, Any], device: str = "cpu") -> None:
    """The same file read by the other programs a format names (ONNX: OpenVINO), each held to the probability
    gate (same top-1, |probability diff| <= PROB_TOL); ``report`` gets them, and fails if one does."""
    runtimes = fmt.other_runtimes(path) if hasattr(fmt, "other_runtimes") else {}
    report["runtimes"] = [fmt.runtime() if hasattr(fmt, "runtime") else fmt.name, *runtimes]
    if not runtimes:
        return
    reference = reference_logits(model, images.tensors, device)
    others = {}
    for name, loaded in runtimes.items():
        if loaded.input == "uint8":
            outputs = np.concatenate([np.asarray(loaded.run(image[None])) for image in images.decoded])
        else:
            outputs = run_batches(loaded, images.tensors, 8)
        multi = loaded.meta.task == "multi-label"
        stats = compare(reference, outputs, loaded.meta.threshold if multi else None)
        agreement = stats["label_set_agreement" if multi else "top1_agreement"]
        stats["passed"] = bool(agreement == 1.0 and stats["max_prob_diff"] <= PROB_TOL)
        others[name] = stats
    report["other_runtimes"] = others
    if not all(o["passed"] for o in others.values()):
        report["passed"] = False
        report["gate"] += f"; and in {', '.join(others)}: same top-1, |probability diff| <= {PROB_TOL}"


def agreement_text(report: dict[str, Any]) -> str:
    """How the labels agreed, as the report's lines say it: top-1, or the label sets of a multi-label model."""
    if "label_set_agreement" in report:
        return f"label-set agreement {report['label_set_agreement']:.3f} (sigmoid)"
    return f"top-1 agreement {report.get('top1_agreement', float('nan')):.3f}"


def wilson_lower_bound(share: float, n: int, z: float = 1.96) -> float:
    """The 95 % lower confidence bound of an agreement measured on n images (Wilson score interval): what
    "1.000 on 32 images" actually promises (0.89)."""
    if n == 0:
        return 0.0
    centre = share + z * z / (2 * n)
    spread = z * ((share * (1 - share) + z * z / (4 * n)) / n) ** 0.5
    return float((centre - spread) / (1 + z * z / n))


def compare(reference: np.ndarray, candidate: np.ndarray, threshold: float | None = None) -> dict[str, float]:
    """Differences of logits and probabilities, top-1 agreement; with a multi-label ``threshold`` the
    probabilities are sigmoids and the label sets at the threshold are compared too."""
    from zoo.multilabel import sigmoid

    diff = np.abs(reference - candidate)
    activation = _softmax if threshold is None else sigmoid
    probs = activation(reference)
    changed = reference.argmax(1) != candidate.argmax(1)
    ranked = np.sort(probs, axis=1)
    margins = ranked[:, -1] - ranked[:, -2] if probs.shape[1] > 1 else ranked[:, -1]
    stats = {
        "max_abs_diff": float(diff.max()),
        "max_rel_diff": float((diff / np.maximum(np.abs(reference), 1e-6)).max()),
        "max_prob_diff": float(np.abs(probs - activation(candidate)).max()),
        "top1_agreement": float(1 - changed.mean()),
        # of the images whose label changed, how sure eager fp32 was of its own (top-1 minus top-2 probability)
        "changed_max_margin": float(margins[changed].max()) if changed.any() else 0.0,
    }
    if threshold is not None:
        sets_differ = ((probs >= threshold) != (activation(candidate) >= threshold)).any(1)
        stats["label_set_agreement"] = float(1 - sets_differ.mean())
    return stats


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(1, keepdims=True))
    return shifted / shifted.sum(1, keepdims=True)
