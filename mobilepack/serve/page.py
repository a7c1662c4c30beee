"""GET /: upload an image, see the float and the quantized artifact's answers side by side."""

from __future__ import annotations

import html
import json

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mobilepack serve</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;max-width:900px;margin:2em auto;padding:0 1em;color:#222}
.cols{display:flex;gap:1em;flex-wrap:wrap}.result{flex:1;min-width:260px;border:1px solid #ddd;border-radius:6px;padding:.8em}
.label{font-size:1.6em;font-weight:600}.err{color:#b71c1c}table{border-collapse:collapse}td{padding:1px 8px}
img#preview{max-height:160px;image-rendering:pixelated;border:1px solid #ccc}
</style></head><body>
<h1>mobilepack serve</h1>
<p>Serving __NAMES__ from the shipped manifest. Pick an image: it is preprocessed as
<code>mobilepack bench</code> does and sent to the float and the quantized artifact.</p>
<form id="form"><input type="file" id="file" name="image" accept="image/*">
<button type="submit" id="go">Classify</button></form>
<p><img id="preview" alt="" hidden></p>
<div class="cols" id="results"></div>
<script>
const ARTIFACTS = __PAIR__;
document.getElementById("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = document.getElementById("file").files[0];
  const results = document.getElementById("results");
  results.innerHTML = "";
  if (!file) { results.innerHTML = '<p class="err">choose an image first</p>'; return; }
  const preview = document.getElementById("preview");
  preview.src = URL.createObjectURL(file); preview.hidden = false;
  for (const name of ARTIFACTS) {
    const box = document.createElement("div");
    box.className = "result"; box.dataset.artifact = name; box.textContent = name + ": ...";
    results.appendChild(box);
    const body = new FormData(); body.append("image", file);
    const response = await fetch("/predict?artifact=" + encodeURIComponent(name), {method: "POST", body});
    const answer = await response.json();
    box.innerHTML = "";
    const head = document.createElement("div"); head.textContent = name; box.appendChild(head);
    if (!response.ok) {
      const err = document.createElement("p"); err.className = "err"; err.textContent = answer.error; box.appendChild(err);
      continue;
    }
    const label = document.createElement("div"); label.className = "label"; label.textContent = answer.label;
    box.appendChild(label);
    const table = document.createElement("table");
    for (const p of answer.probabilities) {
      const row = table.insertRow(); row.insertCell().textContent = p.label;
      row.insertCell().textContent = p.probability.toFixed(4);
    }
    box.appendChild(table);
    const ms = document.createElement("p"); ms.className = "latency";
    ms.textContent = "latency " + answer.latency_ms.toFixed(3) + " ms (this server)"; box.appendChild(ms);
  }
});
</script></body></html>
"""


def render_page(models) -> str:
    """The float artifact and the most quantized one (int8, else dynamic, else fp16), or what is served."""
    names = list(models.artifacts)
    by_quant = {a.quantization: n for n, a in models.artifacts.items()}
    pair = [models.default]
    quantized = next((by_quant[q] for q in ("int8", "dynamic", "fp16") if q in by_quant), None)
    if quantized and quantized != models.default:
        pair.append(quantized)
    return (PAGE.replace("__NAMES__", html.escape(", ".join(names)))
                .replace("__PAIR__", json.dumps(pair).replace("</", "<\\/")))
