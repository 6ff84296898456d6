"""Classify images with a zoo model.onnx using only numpy, Pillow and onnxruntime (no torch, no zoo):
python examples/onnx_consumer.py exports/<run>/model.onnx photo.jpg ... -> one JSON line per image, as
`zoo predict --json` gives (top-5 labels and probabilities; a multi-label model's "labels" too: sigmoid
per class, those at or above its threshold). Plain or embedded-preprocessing ONNX."""
import json
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
props = session.get_modelmeta().custom_metadata_map  # everything below comes from the file itself
pre, classes, feed = json.loads(props["zoo.meta"])["preprocessing"], json.loads(props["zoo.classes"]), session.get_inputs()[0]
multi_label, threshold = props.get("zoo.activation") == "sigmoid", float(props.get("zoo.threshold", "0.5"))


def decode(path):  # zoo's decoding: EXIF orientation, 16-bit scaled to 8, alpha on white, then RGB
    image = ImageOps.exif_transpose(Image.open(path))
    if image.mode in ("I;16", "I;16L", "I;16B", "I"):
        image = Image.fromarray(np.clip(np.rint(np.asarray(image, dtype=np.float64) / 257), 0, 255).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA"))
    return image.convert("RGB")


def fit(image):  # resize_rule squash: both sides to input_size; letterbox: longer side, black bars around
    (w, h), s = image.size, pre["input_size"]
    size = (s, s) if pre["resize_rule"] == "squash" else (max(1, s * w // max(w, h)), max(1, s * h // max(w, h)))
    square = Image.new("RGB", (s, s))
    square.paste(image.resize(size, Image.BILINEAR), (round((s - size[0]) / 2), round((s - size[1]) / 2)))
    return np.asarray(square, np.float32)


def preprocess(image):  # shorter side to resize_size (longer truncated), bilinear antialiased, centre crop
    (w, h), r, s = image.size, pre["resize_size"], pre["input_size"]
    if pre["resize_rule"] != "shorter_side":
        x = fit(image)
    else:
        x = np.asarray(image.resize((r, int(r * h / w)) if w <= h else (int(r * w / h), r), Image.BILINEAR), np.float32)
        top, left = round((x.shape[0] - s) / 2), round((x.shape[1] - s) / 2)
        x = x[top:top + s, left:left + s]
    x = (x / 255 - np.array(pre["mean"])) / np.array(pre["std"])
    return x.transpose(2, 0, 1)[None].astype(np.float32)


for path in sys.argv[2:]:
    image = decode(path)
    x = np.asarray(image)[None] if feed.type == "tensor(uint8)" else preprocess(image)  # embedded: as decoded
    logits = session.run(None, {feed.name: x})[0][0].astype(np.float64)
    if multi_label:  # one yes/no per class
        probs = 1 / (1 + np.exp(-logits))
    else:
        probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    answer = lambda i: {"label": classes[i], "index": int(i), "prob": round(float(probs[i]), 6)}  # noqa: E731
    ranked = np.argsort(-probs, kind="stable")
    result = {"image": path, "top": [answer(i) for i in ranked[:5]]}
    if multi_label:
        result["labels"] = [answer(i) for i in ranked if probs[i] >= threshold]
    print(json.dumps(result))
