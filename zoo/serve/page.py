"""The page at `/`: choose or drop a photo, see the top-k as bars. One HTML document, no external assets."""

from __future__ import annotations

import html
from typing import Any

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>zoo serve: __TITLE__</title>
<style>
body{font-family:system-ui,sans-serif;max-width:720px;margin:2em auto;padding:0 1em;color:#222}
#drop{border:2px dashed #888;border-radius:8px;padding:2em;text-align:center;cursor:pointer}
#drop.over{background:#eef}
#preview{max-width:100%;max-height:320px;display:block;margin:1em auto}
.row{display:flex;align-items:center;margin:.3em 0}
.label{width:40%;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.bar{height:1.2em;background:#4a7bd0;margin:0 .5em}
.error{color:#b00}
small{color:#666}
</style></head><body>
<h1>__TITLE__</h1>
<p><small>__DETAILS__</small></p>
<div id="drop">Drop a photo here, or <label><u>choose one</u><input id="file" type="file" accept="image/*" hidden></label></div>
<img id="preview" alt="" hidden>
<div id="result" aria-live="polite"></div>
<script>
const drop = document.getElementById("drop"), input = document.getElementById("file");
const result = document.getElementById("result"), preview = document.getElementById("preview");
async function send(file) {
  preview.src = URL.createObjectURL(file); preview.hidden = false;
  result.textContent = "...";
  const form = new FormData(); form.append("file", file);
  const response = await fetch("/v1/predict?top_k=5", {method: "POST", body: form});
  const answer = await response.json();
  result.textContent = "";
  if (!response.ok || answer[0].error) {
    const p = document.createElement("p"); p.className = "error";
    p.textContent = answer.error || answer[0].error; result.appendChild(p); return;
  }
  for (const t of answer[0].top) {
    const row = document.createElement("div"); row.className = "row";
    const label = document.createElement("span"); label.className = "label top-label"; label.textContent = t.label;
    const bar = document.createElement("span"); bar.className = "bar"; bar.style.width = (t.prob * 50) + "%";
    const value = document.createElement("span"); value.textContent = (100 * t.prob).toFixed(1) + " %";
    row.append(label, bar, value); result.appendChild(row);
  }
}
input.addEventListener("change", () => input.files[0] && send(input.files[0]));
drop.addEventListener("dragover", e => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", e => { e.preventDefault(); drop.classList.remove("over");
  if (e.dataTransfer.files[0]) send(e.dataTransfer.files[0]); });
</script></body></html>
"""


def page_html(card: dict[str, Any]) -> str:
    parity = card.get("parity") or {}
    passed = [f"{name}: {'passed' if r.get('passed') else 'FAILED'} on {r.get('images')} images" for name, r in parity.items()]
    details = (f"{len(card['classes'])} classes; serving {card['file']} ({card['kind']}); parity "
               + ("; ".join(passed) if passed else "not checked (a checkpoint, or no parity.json beside it)"))
    return PAGE.replace("__TITLE__", html.escape(str(card["model"]))).replace("__DETAILS__", html.escape(details))
