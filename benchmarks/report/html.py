"""report.html: one self-contained page (plots and thumbnails embedded as PNG data URIs), readable offline.

Everything on the page comes from report.json, plus the evaluation images for the
thumbnails of the inputs the worst artifact gets wrong.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Sequence

import numpy as np

from convert.manifest import PLATFORM_TARGET

from benchmarks.arm64.summary import arm64_intro, arm64_lines, device_lines, with_arm64
from benchmarks.row import Report
from benchmarks.report.summary import (compute_unit_lines, crosscheck_lines, executor_line, fmt, metric_lines, output_table,
                      not_converted_lines, recommendation_lines, shows_outputs, stability_lines, statistics_lines,
                      table_rows, text_columns, with_compute_units, with_not_converted)

COLORS = {"tflite": "#1f77b4", "coreml": "#d62728"}
THUMB_PX = 96


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(b64: str, alt: str, cls: str = "plot") -> str:
    return f'<img class="{cls}" alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)  # headless: no display, no GUI backend
    import matplotlib.pyplot as plt

    return plt


def scatter_plot(report: Report) -> str:
    """Size against accuracy drop (or disagreement), marker area from the best p50."""
    plt = _pyplot()
    rows = report.artifacts
    labelled = all(r.accuracy_drop_pp is not None for r in rows)
    classifier = all(r.agreement is not None for r in rows)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    tflite_p50 = [r.best_p50() for r in rows if r.target == "tflite" and r.best_p50()]
    top = max(tflite_p50, default=1.0)
    for r in rows:
        y = (r.accuracy_drop_pp if labelled else (1 - r.agreement) * 100 if classifier
             else -(r.sqnr_db if r.sqnr_db is not None else 200.0))  # no classifier: worst output's SQNR
        x = r.size_bytes / 1024
        if r.target == "tflite" and r.best_p50():
            size = 40 + 560 * r.best_p50() / top
            ax.scatter(x, y, s=size, color=COLORS["tflite"], alpha=0.6, edgecolors="black", linewidths=0.5)
        else:  # Core ML off a Mac is timed by the numpy evaluator: not a device latency, so no size from it
            ax.scatter(x, y, s=80, facecolors="none", edgecolors=COLORS.get(r.target, "gray"), linewidths=1.5,
                       marker="D")
        ax.annotate(r.name.removeprefix("model_"), (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.axhline(0, color="gray", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("size (KiB, log scale)")
    ax.set_ylabel("accuracy drop vs Keras (pp)" if labelled else "disagreement with Keras (%)" if classifier
                  else "minus worst output SQNR (dB)")
    ax.set_title("Size vs accuracy: filled = TFLite, area = best p50 latency on this host; "
                 "hollow diamond = Core ML", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return _png(fig)


def latency_plot(report: Report, target: str) -> str | None:
    """Box per artifact and thread count, from the stored quantiles (whiskers p5-p95, box p25-p75)."""
    plt = _pyplot()
    stats, names, rep_p50s = [], [], []
    for r in report.artifacts:
        if r.target != target:
            continue
        for s in r.latency_ms:
            rep_p50s.append(s.repetition_p50s())
            q = s.quantiles  # p0, p5, ..., p100
            names.append(f"{r.name.removeprefix('model_')} @{s.threads}t" if s.threads else
                         r.name.removeprefix("model_"))
            stats.append({"whislo": q[1], "q1": q[5], "med": s.p50, "q3": q[15], "whishi": q[19],
                          "fliers": [q[0], q[20]], "label": names[-1]})
    if not stats:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(stats) + 1.2))
    ax.bxp(stats, vert=False, showfliers=True, flierprops={"marker": "|", "markersize": 6})
    for i, p50s in enumerate(rep_p50s, start=1):  # each fresh process's own p50: do the repetitions agree?
        ax.scatter(p50s, [i] * len(p50s), s=14, color="black", zorder=3, marker="o", facecolors="none")
    ax.set_xscale("log")
    ax.set_xlabel("batch-1 latency (ms, log scale); whiskers p5-p95, ticks min and max, circles each repetition's p50")
    ax.set_title("LiteRT on this host" if target == "tflite" else "Core ML " + (
        "reference evaluator (numerics check, not device speed)" if any(
            r.runtime == "coreml-reference" for r in report.artifacts) else "on this Mac"), fontsize=9)
    ax.grid(True, axis="x", which="both", alpha=0.3)
    return _png(fig)


def per_class_plot(worst: dict) -> str | None:
    if not worst or not worst["per_class"]:
        return None
    plt = _pyplot()
    pc = worst["per_class"]
    fig, ax = plt.subplots(figsize=(7.5, 2.8))
    change = [c["change_pp"] for c in pc]
    ax.bar([str(c["label"]) for c in pc], change, color=["#d62728" if v < 0 else "#2ca02c" for v in change])
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel("accuracy change (pp)")
    ax.set_xlabel("class")
    ax.set_title(f"{worst['name']}: per-class accuracy against the Keras reference", fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    return _png(fig)


def thumbnail(image: np.ndarray) -> str:
    """A small nearest-neighbour PNG of one evaluation image, so pixels stay visible."""
    from PIL import Image

    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    img = Image.fromarray(arr)
    scale = max(1, THUMB_PX // max(img.size))
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{margin-bottom:.2em} .verdict{font-size:1.3em;font-weight:600;padding:.4em .8em;border-radius:6px;display:inline-block}
.passed{background:#e3f5e1;color:#1b5e20}.failed{background:#fde2e1;color:#b71c1c}.notgated{background:#eee}
table{border-collapse:collapse;font-size:.82em;margin:1em 0} th,td{border:1px solid #ddd;padding:3px 6px}
td.num{text-align:right;font-variant-numeric:tabular-nums} tr.failed td{background:#fff3f2}
.note{background:#fff8e1;border-left:4px solid #f9a825;padding:.5em 1em;margin:1em 0}
img.plot{max-width:100%;display:block;margin:.5em 0} .thumbs{display:flex;flex-wrap:wrap;gap:10px}
figure{margin:0;text-align:center;font-size:.75em} img.thumb{image-rendering:pixelated;border:1px solid #ccc}
"""


def render_html(report: Report, images: Sequence[np.ndarray] | None = None) -> str:
    """The whole page as one string."""
    e = html.escape
    m, d, g = report.machine, report.dataset, report.gate
    verdict_cls = {"passed": "passed", "failed": "failed"}.get(g["verdict"], "notgated")
    head, rows = with_not_converted(*with_arm64(*with_compute_units(*table_rows(report), report), report), report)
    text_cells = text_columns(head)
    body = [
        "<h1>mobilepack benchmark report</h1>",
        f'<p><span class="verdict {verdict_cls}">Gate: {e(g["verdict"].upper())}</span> '
        f"{len(report.artifacts)} artifact(s), {d['count']} inputs from <code>{e(d['name'])}</code> "
        f"({e(d['split'])} split), {e(report.created_at)}</p>",
        "<h2>Summary</h2><ul>",
        *[f"<li>{e(line[0].upper() + line[1:])}</li>" for line in recommendation_lines(report)],
        f"<li>Reference (Keras): accuracy {fmt(report.reference['accuracy'], '.4f')}, batch-1 p50 "
        f"{report.reference['latency_ms']['p50']:.3f} ms</li></ul>",
        f'<div class="note"><b>Measured on</b> {e(m["cpu"])}, {m["cores"]} cores '
        f"({e(', '.join(m['vector_extensions']) or 'no vector extensions seen')}), {e(m['os'])}, Python "
        f"{e(m['python'])}.<br>{e(m['note'])}" + (f"<br>{e(executor_line(report))}" if executor_line(report) else "")
        + "</div>",
        "<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>",
        *[f'<tr class="{e(r[-1])}">' + "".join(
            f'<td class="{"num" if text_cells <= i < len(r) - 1 else ""}">{e(c)}</td>' for i, c in enumerate(r))
          + "</tr>"
          for r in rows],
        "</table>",
        *[f'<div class="note">{e(line)}</div>' for line in not_converted_lines(report)],
        *[f'<div class="note"><b>{e(line)}</b></div>' for line in stability_lines(report)],
        "<h2>Size, accuracy and latency</h2>", _img(scatter_plot(report), "size vs accuracy drop scatter"),
        "<h2>Latency distributions</h2>",
    ]
    for target in ("tflite", "coreml"):
        plot = latency_plot(report, target)
        if plot:
            body.append(_img(plot, f"{target} latency distribution"))
    if shows_outputs(report):
        ohead, orows = output_table(report)
        body += ["<h2>Outputs</h2><p>Each output is judged by its kind.</p><table><tr>"
                 + "".join(f"<th>{e(h)}</th>" for h in ohead) + "</tr>",
                 *[f'<tr class="{e(r[-1])}">' + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in orows],
                 "</table>"]
    body += _units_section(report) + _arm64_section(report)
    if report.metric:
        body += ["<h2>Task metric</h2><ul>", *[f"<li>{e(line)}</li>" for line in metric_lines(report)], "</ul>"]
    body += ["<h2>Statistics</h2><p>95% intervals: Wilson for accuracy and agreement, Newcombe's paired interval "
             "for the drop. Verdicts come from the point estimates; an underpowered row has too few inputs to "
             "resolve its gate.</p><ul>",
             *[f"<li>{e(line.replace('`', ''))}</li>" for line in statistics_lines(report)], "</ul>"]
    checks = crosscheck_lines(report)
    if checks:
        body += [f"<h3>Cross-check with <code>{e(report.crosscheck['tool'])}</code></h3><ul>",
                 *[f"<li>{e(line.replace('`', ''))}</li>" for line in checks], "</ul>"]
    body += _worst_section(report.worst, images)
    body += ["<h2>Checks</h2><ul>",
             *[f"<li><b>{e(a.status.upper())}</b> <code>{e(a.name)}</code>: {e(a.reason)}</li>"
               for a in report.artifacts], "</ul>",
             f"<p>Machine-readable: <code>report.json</code> (schema_version {report.schema_version}). "
             f"Platforms: {', '.join(f'{p} embeds {t}' for p, t in PLATFORM_TARGET.items())}.</p>"]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>mobilepack report: {e(g['verdict'])}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _arm64_section(report: Report) -> list[str]:
    if not report.arm64:
        return []
    intro = f"<p>{html.escape(arm64_intro(report))}</p>" if report.arm64["status"] == "measured" else ""
    device = device_lines(report)
    return ["<h2>ARM64 (emulated Cortex-A76)</h2>" + intro + "<ul>",
            *[f"<li>{html.escape(line.replace('`', ''))}</li>" for line in arm64_lines(report)], "</ul>",
            *(["<h2>On the device (benchmark_model)</h2><p>Figures a phone measured, not this host.</p><ul>",
               *[f"<li>{html.escape(line.replace('`', ''))}</li>" for line in device], "</ul>"] if device else [])]


def _units_section(report: Report) -> list[str]:
    units = compute_unit_lines(report)
    if not units:
        return []
    return ["<h2>Core ML compute units</h2><p>Judged from each artifact's precision and ops, not measured on a "
            "device; a NeuralNetwork's figures at both precisions, gpu/ane (gated) and cpu.</p><ul>",
            *[f"<li>{html.escape(line.replace('`', ''))}</li>" for line in units], "</ul>"]


def _worst_section(worst: dict | None, images) -> list[str]:
    e = html.escape
    if not worst:
        return []
    drop = worst["accuracy_drop_pp"]
    out = [f"<h2>Worst artifact: <code>{e(worst['name'])}</code></h2>"]
    if worst["output"] is None:
        sqnr = "exact" if worst["sqnr_db"] is None else f"{worst['sqnr_db']:.1f} dB"
        return out + [f"<p>No classification output; lowest SQNR of any output: {e(sqnr)}.</p>"]
    out.append(f"<p>Output <code>{e(worst['output'])}</code>: accuracy drop {fmt(drop, '+.2f')} pp, agreement "
               f"{worst['agreement']:.4f}; it gets {worst['missed_count']} input(s) wrong, "
               f"{worst['newly_missed_count']} of them right in the reference.</p>")
    plot = per_class_plot(worst)
    if plot:
        out.append(_img(plot, "per-class accuracy change"))
    if worst["misses"]:
        out.append(f"<h3>Inputs it gets wrong (first {len(worst['misses'])})</h3><div class=\"thumbs\">")
        for miss in worst["misses"]:
            cap = (f"#{miss['index']}: true {miss['label']}, got {miss['predicted']}, reference {miss['reference']}"
                   if miss["label"] is not None else f"#{miss['index']}: got {miss['predicted']}, reference {miss['reference']}")
            pic = _img(thumbnail(images[miss["index"]]), cap, "thumb") if images is not None else ""
            out.append(f"<figure>{pic}<figcaption>{e(cap)}</figcaption></figure>")
        out.append("</div>")
    return out


def expected_image_count(report: Report, has_images: bool) -> int:
    """How many <img> elements render_html writes for `report` (the browser test checks them all)."""
    count = 1 + sum(1 for t in ("tflite", "coreml") if any(r.target == t for r in report.artifacts))
    worst = report.worst
    if worst:
        count += 1 if worst["per_class"] else 0
        count += len(worst["misses"]) if has_images else 0
    return count
