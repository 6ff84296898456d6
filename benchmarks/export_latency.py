"""Inference latency of every export format that can run here, against eager PyTorch, on one machine.

For each model: a short fine-tune on --data at --size (so the logits mean something: int8 agreement
of a random network is noise), then `zoo.export` of every available format (and the ONNX files with
the preprocessing embedded), each through its parity gate. Then median latency over --runs calls at
batch 1 and 8 (embedded preprocessing: from decoded uint8 images of the dataset's own sizes, resize
and crop included), and the export + parity wall time per format.

    python benchmarks/export_latency.py [--models resnet18 resnet50] [--size 224] [--runs 20] [--formats onnx,pt2]
                                        [--no-embedded] [--reference-device cuda] [--smoke]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import zoo
from zoo.exporter.formats import get_format
from _table import SHARED_DATA, report

parser = argparse.ArgumentParser()
parser.add_argument("--models", nargs="+", default=["resnet18", "resnet50"])
parser.add_argument("--data", default="hymenoptera")
parser.add_argument("--size", type=int, default=224)
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--runs", type=int, default=20)
parser.add_argument("--data-root", default=SHARED_DATA)
parser.add_argument("--reference-device", default="cpu", help="where parity's eager fp32 reference runs (cuda: TF32 off)")
parser.add_argument("--formats", default="all", help="comma-separated export formats (default: every one)")
parser.add_argument("--no-embedded", action="store_true", help="skip the ONNX files with preprocessing embedded")
parser.add_argument("--smoke", action="store_true", help="the tiny example model and dataset, to check the script runs")
args = parser.parse_args()
if args.smoke:
    args.models, args.data, args.size, args.epochs, args.runs = ["example_tinynet"], "example_shapes", 32, 1, 3
BATCHES = (1, 8)


def median_ms(call, batch) -> float:
    for _ in range(3):
        call(batch)
    samples = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        call(batch)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


def trained_run(name: str, folder: Path) -> Path:
    run = folder / f"{name}-run"
    zoo.finetune(model=name, data=args.data, data_root=args.data_root, image_size=args.size, epochs=args.epochs,
                 batch_size=32, output=str(run), quiet=True)
    return run


def exported(run: Path, out: Path, **options):
    """zoo.export's result; a file that fails its gate is still timed (the table shows its agreement)."""
    result = zoo.export(run, output=out, max_images=200, reference_device=args.reference_device, strict=False,
                        **options)
    for fmt, parity in result.parity.items():
        if not parity["passed"]:
            print(f"note: {fmt} fails its gate ({parity['gate']}): agreement {parity['top1_agreement']:.3f}; of the "
                  f"images whose label changed, eager fp32 was at most {parity['changed_max_margin']:.2f} surer "
                  "of its top-1 than of its second")
    return result


rows, export_rows = [], []
for name in args.models:
    with tempfile.TemporaryDirectory() as tmp:
        run = trained_run(name, Path(tmp))
        plain = exported(run, Path(tmp) / "plain", format=args.formats)
        exports = {fmt: (plain, path) for fmt, path in plain.files.items()}
        if not args.no_embedded:
            embedded = exported(run, Path(tmp) / "embedded", format="onnx,onnx-int8", embed_preprocessing=True)
            exports.update({f"{fmt} (embedded preprocessing)": (embedded, path) for fmt, path in embedded.files.items()})
        model = zoo.create_model(name, weights=run / "best.safetensors").eval()
        dataset = zoo.create_dataset(args.data, data_root=args.data_root)
        photos = [np.asarray(dataset.eval.load(i)) for i in range(8)]
        for batch in BATCHES:
            x = torch.randn(batch, 3, args.size, args.size)
            with torch.no_grad():
                eager = median_ms(model, x)
            rows.append({"model": name, "format": "eager (fp32)", "batch": batch, "ms": eager, "vs_eager": 1.0,
                         "top1_agreement": 1.0, "max_prob_diff": 0.0, "changed_max_margin": 0.0})
            onnx_ms = None
            for label, (result, path) in exports.items():
                fmt_name = label.split(" ")[0]
                loaded = get_format("onnx" if fmt_name == "onnx-int8" else fmt_name).load(path)
                if loaded.input == "uint8":  # one decoded photo per call: they differ in size
                    ms = median_ms(lambda images: [loaded.run(image[None]) for image in images], photos[:batch])
                else:
                    ms = median_ms(loaded.run, x)
                onnx_ms = ms if label == "onnx" else onnx_ms
                parity = result.parity[fmt_name]
                rows.append({"model": name, "format": label, "batch": batch, "ms": ms, "vs_eager": ms / eager,
                             "top1_agreement": parity["top1_agreement"], "max_prob_diff": parity["max_prob_diff"],
                             "changed_max_margin": parity["changed_max_margin"]})
            for row in rows:
                if row["model"] == name and row["batch"] == batch and onnx_ms:
                    row["vs_onnx_fp32"] = row["ms"] / onnx_ms
        for label, (result, _) in exports.items():
            export_rows.append({"model": name, "format": label, "export_and_parity_s": result.seconds[label.split(" ")[0]]})
report("export_latency", rows, {"size": args.size, "runs": args.runs, "export_seconds": export_rows},
       smoke=args.smoke)
for row in export_rows:
    print(f"export + parity  {row['model']:<16} {row['format']:<40} {row['export_and_parity_s']:.1f} s")
