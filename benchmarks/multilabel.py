"""Multi-label on food20-multilabel: mAP against the label-frequency baseline, the exports' gates, and the
numpy consumer against `zoo predict --json`, all through the commands a user types.

    python benchmarks/multilabel.py [--model resnet18] [--size 128] [--epochs 12] [--smoke]

Steps: `zoo finetune MODEL --data .../food20-multilabel` (task detected), `zoo eval` at threshold 0.5 and
at the tuned thresholds, `zoo export` (onnx, embedded uint8 onnx, pt2: each through its parity gate),
then examples/onnx_consumer.py and `zoo predict --json` on --compare validation images: how many label
sets agree. The label-frequency baseline scores every image with each class's training frequency (the
mAP of a model that learned nothing about the image).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _table import SHARED_DATA, progress, report

parser = argparse.ArgumentParser()
parser.add_argument("--model", default="resnet18")
parser.add_argument("--size", type=int, default=128)
parser.add_argument("--epochs", type=int, default=12)
parser.add_argument("--compare", type=int, default=100, help="validation images for consumer vs predict")
parser.add_argument("--data-root", default=SHARED_DATA)
parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the script runs")
args = parser.parse_args()
if args.smoke:
    args.model, args.size, args.epochs, args.compare = "example_tinynet", 32, 1, 10
DATA = Path(args.data_root) / "food20-multilabel"
ROOT = Path(__file__).resolve().parents[1]


def zoo_cli(*argv: str) -> str:
    done = subprocess.run([sys.executable, "-m", "zoo", *argv], capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        sys.exit(f"zoo {' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


with tempfile.TemporaryDirectory() as tmp:
    run, exports = Path(tmp) / "run", Path(tmp) / "exports"
    started = time.perf_counter()
    zoo_cli("finetune", args.model, "--data", str(DATA), "--epochs", str(args.epochs), "--image-size", str(args.size),
            "-o", str(run), "--quiet")
    train_s = time.perf_counter() - started
    rows = []
    for threshold in ("0.5", "tuned"):
        zoo_cli("eval", str(run), "-q", "--threshold", threshold, "-o", str(Path(tmp) / f"eval-{threshold}"))
        metrics = json.loads((Path(tmp) / f"eval-{threshold}" / "metrics.json").read_text())
        m = metrics["multilabel"]
        rows.append({"threshold": threshold, "map": m["map"], "label_frequency_map": m["label_frequency_map"],
                     "micro_f1": m["micro_f1"], "macro_f1": metrics["macro_f1"], "exact_match": m["exact_match"],
                     "precision_at_1": metrics["top1"]})
        progress(rows[-1])
    gates = {}
    for fmt, flags in (("onnx", []), ("onnx", ["--embed-preprocessing"]), ("pt2", [])):
        folder = exports / f"{fmt}{'-uint8' if flags else ''}"
        zoo_cli("export", str(run), "--format", fmt, *flags, "-o", str(folder))
        parity = json.loads((folder / "parity.json").read_text())[fmt]
        gates[folder.name] = {"passed": parity["passed"], "label_set_agreement": parity["label_set_agreement"],
                              "max_prob_diff": parity["max_prob_diff"]}
    images = sorted((DATA / "val").glob("*.jpg"))[:args.compare]
    agree = {}
    for name in ("onnx", "onnx-uint8"):
        model = next((exports / name).glob("*.onnx"))
        consumer = subprocess.run([sys.executable, str(ROOT / "examples" / "onnx_consumer.py"), str(model),
                                   *map(str, images)], capture_output=True, text=True, check=True).stdout
        theirs = [json.loads(line) for line in consumer.splitlines()]
        ours = json.loads(zoo_cli("predict", str(model), *map(str, images), "--json"))
        agree[name] = sum({x["label"] for x in a["labels"]} == {x["label"] for x in b["labels"]}
                          for a, b in zip(theirs, ours)) / len(images)
report("multilabel", rows, {"model": args.model, "size": args.size, "epochs": args.epochs, "train_s": round(train_s),
                            "export_gates": gates, "consumer_label_sets_agree": agree, "compared_images": len(images)},
       smoke=args.smoke)
print("export gates:", json.dumps(gates))
print("consumer vs zoo predict --json, same label sets:", agree)
