"""zoo.evaluate(): a run, a checkpoint or any export, scored on a whole dataset split.

Top-1/top-5, per-class precision/recall/F1, a confusion matrix (JSON + PNG) and the hardest mistakes
(an HTML page with thumbnails: true and predicted class, confidence), written to an output folder.
The images go through the preprocessing the model file carries, so an export and the checkpoint it
came from can be shown to score the same.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.errors import UnknownNameError, ZooError
from zoo.files import atomic_write_json, atomic_write_text
from zoo.outputs import as_folder, staged_output
from zoo.inference import load_predictor
from zoo.progress import progress_bar

log = logging.getLogger("zoo.eval")
THUMBNAIL = 112
EVAL_MARKER = ".zoo-eval"  # an evaluation folder zoo made (it writes into no other non-empty folder)


@dataclass
class EvalReport:
    source: str
    data: str
    split: str
    images: int
    top1: float
    top5: float
    classes: list[str]
    per_class: list[dict[str, Any]]  # class, precision, recall, f1, support
    confusion_matrix: list[list[int]]
    balanced_accuracy: float = 0.0  # mean recall over the classes
    macro_f1: float = 0.0
    mistakes: list[dict[str, Any]] = field(default_factory=list)  # image, true, predicted, confidence
    output_dir: str = ""
    task: str = "single-label"
    # multi-label: map, label_frequency_map, micro_f1, exact_match, threshold(s), tuned_macro_f1; per_class
    # entries then also hold ap, tp, fp and fn; top1 is "the most probable class is a true one"
    multilabel: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if self.multilabel:
            m = self.multilabel
            worst = sorted((c for c in self.per_class if c["ap"] is not None), key=lambda c: c["ap"])[:3]
            return (f"{self.source} on {self.data}/{self.split} ({self.images} images, multi-label): mAP {m['map']:.4f} "
                    f"(label frequencies alone: {m['label_frequency_map']:.4f})  micro-F1 {m['micro_f1']:.4f}  "
                    f"macro-F1 {self.macro_f1:.4f}  exact match {m['exact_match']:.4f} at threshold "
                    f"{m['threshold_used']}; lowest AP: " + ", ".join(f"{c['class']} {c['ap']:.2f}" for c in worst))
        worst = sorted(self.per_class, key=lambda c: c["f1"])[:3]
        return (f"{self.source} on {self.data}/{self.split} ({self.images} images): top-1 {self.top1:.4f}  "
                f"top-5 {self.top5:.4f}  balanced accuracy {self.balanced_accuracy:.4f}  macro-F1 {self.macro_f1:.4f}; "
                "lowest F1: " + ", ".join(f"{c['class']} {c['f1']:.2f}" for c in worst))


def evaluate(source: str | Path, data: str | None = None, split: str | None = None, output: str | Path | None = None,
             batch_size: int = 64, device: str = "auto", data_root: str | None = None, mistakes: int = 48,
             progress: bool = True, threshold: float | str | None = None) -> EvalReport:
    """Score SOURCE (a run, its name or latest, a checkpoint, an .onnx or a TorchScript .pt) on a split
    of ``data`` (default: the dataset and options the run trained with; split: its evaluation split).
    A multi-label model is scored at ``threshold`` (a probability, "tuned", or None: the model's own)."""
    from zoo.inference import label_thresholds

    predictor = load_predictor(source, device)
    thresholds = label_thresholds(predictor.meta, threshold) if predictor.multi_label else None
    dataset, data_name = _dataset_for(predictor, data, data_root)
    dataset = dataset.with_task("multi" if predictor.multi_label else "single")
    split = split or dataset.eval_split_name
    if split not in dataset.splits:
        raise ZooError(f"dataset {data_name} has no split {split!r}; it has {', '.join(dataset.splits)}")
    if list(dataset.classes) != predictor.meta.classes:
        raise ZooError(f"{predictor.source} was trained on {len(predictor.meta.classes)} classes "
                       f"({', '.join(predictor.meta.classes[:4])}, ...), but {data_name} has {len(dataset.classes)} "
                       f"({', '.join(dataset.classes[:4])}, ...); evaluate it on data with the same classes")
    images = dataset.splits[split]
    probs = _probabilities(predictor, images, batch_size, progress)
    if thresholds is not None:
        labels = np.asarray(images.labels)
        report = _score_multilabel(probs, labels, dataset.classes, str(predictor.source), data_name, split, thresholds,
                                   "tuned" if threshold == "tuned" else thresholds[0])
        report.mistakes = _wrong_label_sets(probs, labels, images, dataset.classes, thresholds, mistakes)
    else:
        labels = np.asarray(images.labels, dtype=np.int64)
        report = _score(probs, labels, dataset.classes, str(predictor.source), data_name, split)
        report.mistakes = _hardest_mistakes(probs, labels, images, dataset.classes, mistakes)
    out = as_folder(output) if output else _default_output(predictor.source, data_name, split)
    _write(report, out, images, dataset.classes)
    report.output_dir = str(out)
    return report


def _dataset_for(predictor, data: str | None, data_root: str | None):
    """The dataset to score on, opened with the options the run used (so a split zoo drew is the same)."""
    from zoo.data.api import create_dataset
    from zoo.runs import find_run

    options: dict[str, Any] = {}
    config: dict[str, Any] = {}
    source = Path(predictor.source)
    # the run folder the model is in (a checkpoint's), else the run it names (an export's), under runs/
    for run in (source if source.is_dir() else source.parent, predictor.meta.run):
        try:
            config = find_run(run).read_config() if run else {}
            break
        except ZooError:
            continue
    if data is None or data == config.get("data"):
        options = {k: config[k] for k in ("val_ratio", "seed") if k in config}
        data_root = data_root or config.get("data_root")
    name = data or config.get("data") or predictor.meta.dataset.get("name")
    if not name:
        raise ZooError(f"cannot tell which data {predictor.source} was trained on; pass --data")
    try:
        return create_dataset(name, data_root=data_root, **options), name
    except UnknownNameError:
        if data is not None:
            raise
        raise ZooError(f"{predictor.source} was trained on {name!r}, which is no dataset name or folder here; "
                       "pass --data with a dataset name or folder that has its classes") from None


@torch.no_grad()
def _probabilities(predictor, images, batch_size: int, progress: bool) -> np.ndarray:
    from zoo.data.loader import TransformedImages, default_workers

    if predictor.input == "uint8":  # the file preprocesses itself: hand it decoded images
        loader = [([np.asarray(images.load(i)) for i in range(start, min(start + batch_size, len(images)))], None)
                  for start in range(0, len(images), batch_size)]
    else:
        loader = torch.utils.data.DataLoader(TransformedImages(images, predictor.transform()), batch_size=batch_size,
                                             num_workers=default_workers(torch.device("cpu")))
    out = []
    with progress_bar("evaluating", len(loader), progress) as bar:
        for done, (batch, _) in enumerate(loader, 1):
            out.append(predictor.probabilities(batch).numpy())
            if bar.due():
                bar.show(done, f"{done * batch_size} images")
    return np.concatenate(out) if out else np.zeros((0, len(predictor.meta.classes)), dtype=np.float32)


def _score(probs: np.ndarray, labels: np.ndarray, classes: list[str], source: str, data: str, split: str) -> EvalReport:
    n = len(classes)
    predicted = probs.argmax(1) if len(probs) else np.zeros(0, dtype=np.int64)
    confusion = np.bincount(labels * n + predicted, minlength=n * n).reshape(n, n)
    top5 = np.argsort(-probs, axis=1)[:, :min(5, n)] if len(probs) else np.zeros((0, 1), dtype=np.int64)
    per_class = []
    for c, name in enumerate(classes):
        tp, support, claimed = confusion[c, c], confusion[c].sum(), confusion[:, c].sum()
        precision = tp / claimed if claimed else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append({"class": name, "precision": float(precision), "recall": float(recall), "f1": float(f1),
                          "support": int(support)})
    count = max(1, len(labels))
    present = [c for c in per_class if c["support"]]
    return EvalReport(source, data, split, len(labels), float((predicted == labels).sum() / count),
                      float((top5 == labels[:, None]).any(1).sum() / count), list(classes), per_class,
                      confusion.tolist(), balanced_accuracy=float(np.mean([c["recall"] for c in present] or [0.0])),
                      macro_f1=float(np.mean([c["f1"] for c in present] or [0.0])))


def _score_multilabel(probs: np.ndarray, labels: np.ndarray, classes: list[str], source: str, data: str, split: str,
                      thresholds: list[float], shown: float | str) -> EvalReport:
    from zoo import multilabel

    s = multilabel.summary(probs, labels, multilabel.DEFAULT_THRESHOLD)
    at = multilabel.scores_at(probs, labels, thresholds)
    per_class = [{"class": name, "precision": at["precision"][c], "recall": at["recall"][c], "f1": at["f1"][c],
                  "support": int(labels[:, c].sum()), "ap": s["per_class_ap"][c], "tp": at["tp"][c], "fp": at["fp"][c],
                  "fn": at["fn"][c], "threshold": thresholds[c]} for c, name in enumerate(classes)]
    return EvalReport(source, data, split, len(labels), s["top1"], s["top5"], list(classes), per_class, [],
                      balanced_accuracy=at["macro_recall"], macro_f1=at["macro_f1"], task="multi-label", multilabel={
                          "map": s["map"], "label_frequency_map": s["label_frequency_map"], "micro_f1": at["micro_f1"],
                          "exact_match": at["exact_match"], "threshold_used": shown,
                          "cardinality": float(labels.sum(1).mean()) if len(labels) else 0.0,
                          "tuned_thresholds": s["tuned_thresholds"], "tuned_macro_f1": s["at_tuned"]["macro_f1"]})


def _wrong_label_sets(probs, labels, images, classes, thresholds, limit: int) -> list[dict[str, Any]]:
    """Images whose predicted label set is not their true one, the most confidently wrong label first."""
    from zoo.multilabel import predicted

    truth, guess = labels > 0.5, predicted(probs, thresholds)
    error = np.where(guess != truth, np.abs(probs - truth), 0).max(1)
    wrong = np.flatnonzero((guess != truth).any(1))
    order = wrong[np.argsort(-error[wrong], kind="stable")][:limit]
    names = getattr(images, "paths", None)
    return [{"index": int(i), "image": names[i] if names is not None else f"#{i}",
             "true": " ".join(classes[c] for c in np.flatnonzero(truth[i])) or "(none)",
             "predicted": " ".join(classes[c] for c in np.flatnonzero(guess[i])) or "(none)",
             "confidence": round(float(error[i]), 4)} for i in order]


def _hardest_mistakes(probs, labels, images, classes, limit: int) -> list[dict[str, Any]]:
    """Wrong predictions, most confident first: what the model is surest about and wrong."""
    if not len(probs):
        return []
    predicted = probs.argmax(1)
    wrong = np.flatnonzero(predicted != labels)
    order = wrong[np.argsort(-probs[wrong, predicted[wrong]], kind="stable")][:limit]
    names = getattr(images, "paths", None)
    return [{"index": int(i), "image": names[i] if names is not None else f"#{i}", "true": classes[labels[i]],
             "predicted": classes[predicted[i]], "confidence": round(float(probs[i, predicted[i]]), 4)} for i in order]


def _default_output(source: Path, data: str, split: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in Path(data).name)
    folder = source if source.is_dir() else source.parent
    return folder / f"eval-{source.stem if source.is_file() else 'best'}-{safe}-{split}"


def _write(report: EvalReport, out: Path, images, classes: list[str]) -> None:
    """The report's files, swapped in whole (zoo.outputs): into an empty folder or one an earlier
    `zoo eval` wrote (its .zoo-eval marker), never over a user's files."""
    from zoo.engine.metrics import write_confusion_png

    with staged_output(out, EVAL_MARKER, "evaluation folder", ZooError) as staging:
        atomic_write_json(staging / "metrics.json", report.to_dict())
        if report.confusion_matrix:  # multi-label: per-class TP/FP/FN are in metrics.json instead
            write_confusion_png(staging / "confusion_matrix.png", classes, report.confusion_matrix,
                                title=f"confusion matrix ({report.data}/{report.split})")
        atomic_write_text(staging / "mistakes.html", _mistakes_page(report, images))


def _mistakes_page(report: EvalReport, images) -> str:
    cells = []
    for m in report.mistakes:
        thumb = images.load(m["index"])
        thumb.thumbnail((THUMBNAIL, THUMBNAIL))
        buffer = io.BytesIO()
        thumb.save(buffer, format="JPEG", quality=85)
        data = base64.b64encode(buffer.getvalue()).decode()
        cells.append(f'<figure><img src="data:image/jpeg;base64,{data}" alt=""><figcaption>'
                     f'<b>{html.escape(m["predicted"])}</b> {m["confidence"]:.2f}<br>true: {html.escape(m["true"])}'
                     f'<br><small>{html.escape(Path(str(m["image"])).name)}</small></figcaption></figure>')
    title = html.escape(f"{report.source}: hardest mistakes on {report.data}/{report.split}")
    return (f"<!doctype html><meta charset=utf-8><title>{title}</title><style>body{{font-family:sans-serif}}"
            "figure{display:inline-block;width:150px;margin:6px;vertical-align:top;font-size:13px}"
            f"img{{max-width:{THUMBNAIL}px}}</style><h1>{title}</h1><p>top-1 {report.top1:.4f}, "
            f"{report.images} images, {len(report.mistakes)} most confident mistakes shown "
            "(predicted class and confidence, then the true class)</p>" + "".join(cells) + "\n")
