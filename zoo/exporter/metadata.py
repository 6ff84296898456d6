"""What an export says about itself, so a consumer with only the file can reproduce `zoo predict`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zoo.runs import CheckpointMeta

# How zoo turns a file into the RGB image the preprocessing starts from (zoo/data/decode.py).
DECODING = {
    "library": "Pillow",
    "exif_orientation": "applied first (PIL.ImageOps.exif_transpose)",
    "animated": "the first frame",
    "16_bit": "I;16 / I samples divided by 257 and rounded to 8 bits (scaled, not clipped), then gray to RGB",
    "alpha": "RGBA, LA, PA and palette-with-transparency images composited on white, then RGB",
    "other_modes": "L, P, 1, CMYK, YCbCr: Image.convert('RGB')",
    "max_pixels": "64000000: an image declaring more (width x height in its header) is refused before decoding",
}
RECIPE = ("decode as `decoding` says; resize (bilinear, antialiased) so the shorter side is resize_size and "
          "the longer side int(resize_size * long / short); round to whole 0-255 levels; centre-crop input_size "
          "(top = round((height - input_size) / 2), Python rounding). resize_rule 'squash' (crop 'none'): resize "
          "both sides to input_size instead; 'letterbox': resize the longer side to input_size and the shorter to "
          "int(input_size * short / long), round, then pad with black (0) to input_size squared, the image at "
          "top = round((input_size - height) / 2), left likewise. Then divide by 255; subtract mean, divide by std "
          "per RGB channel; NCHW float32. A file with preprocessing embedded takes the decoded uint8 RGB image "
          "as (1, H, W, 3) and does the rest itself.")
OUTPUTS = {  # what the logits become, by the checkpoint's task
    "single-label": "softmax over the classes; the label is the most probable class",
    "multi-label": "sigmoid per class; the labels are every class whose probability >= threshold (or >= its entry of "
                   "thresholds, tuned per class on validation, when asked for)",
}


def export_metadata(meta: CheckpointMeta, embedded: bool | None = None) -> dict[str, Any]:
    """The checkpoint's metadata plus the whole consumer recipe (nothing machine-specific); with
    ``embedded`` given (the metadata inside one ONNX file), the input that file takes."""
    values = {**meta.to_dict(), "activation": activation(meta), "outputs": OUTPUTS[meta.task], "decoding": DECODING,
              "recipe": RECIPE}
    if embedded is not None:
        values["input"] = "uint8 (N, H, W, 3) RGB" if embedded else "float32 (N, 3, input_size, input_size)"
    return values


def metadata_props(meta: CheckpointMeta, embedded: bool = False) -> dict[str, str]:
    """ONNX metadata_props: one key per fact a consumer reads, plus everything as zoo.meta."""
    pre = meta.preprocessing
    return {
        "zoo.classes": json.dumps(meta.classes),
        "zoo.mean": json.dumps(list(pre.mean)),
        "zoo.std": json.dumps(list(pre.std)),
        "zoo.input_size": str(pre.input_size),
        "zoo.resize_size": str(pre.resize_size),
        "zoo.interpolation": pre.interpolation,
        "zoo.antialias": json.dumps(pre.antialias),
        "zoo.resize_rule": pre.resize_rule,
        "zoo.crop": pre.crop,
        "zoo.channel_order": pre.channel_order,
        "zoo.embedded_preprocessing": json.dumps(embedded),
        "zoo.task": meta.task,
        "zoo.activation": activation(meta),
        "zoo.threshold": json.dumps(meta.threshold),
        "zoo.thresholds": json.dumps(meta.thresholds),
        "zoo.decoding": json.dumps(DECODING),
        "zoo.recipe": RECIPE,
        "zoo.model": meta.model,
        "zoo.run": meta.run,
        "zoo.meta": json.dumps(export_metadata(meta, embedded)),
    }


def activation(meta: CheckpointMeta) -> str:
    return "sigmoid" if meta.task == "multi-label" else "softmax"


def relative_checkpoint(checkpoint: Path, run_name: str | None) -> str:
    """The checkpoint named relative to its run (never an absolute path of the training machine)."""
    return f"{run_name}/{checkpoint.name}" if run_name else checkpoint.name
