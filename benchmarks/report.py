"""report.json (the machine contract), report.md (for a pull request), the terminal table; report.html in html.py."""

from __future__ import annotations

from pathlib import Path

from train.fsutil import atomic_write_json, atomic_write_text

# 2: fresh-process memory, Google tool cross-check, latency quantiles.
# 3: per-output figures and gates by kind, 95% intervals, underpowered rows, user metrics, budget.
# 4: latency from repeated processes: repetitions with their samples, p50 interval, spread, unstable.
REPORT_SCHEMA_VERSION = 4
PLATFORMS = {"android": "tflite", "ios": "coreml"}  # the target each app embeds


def _fmt(v, spec: str, none: str = "-") -> str:
    return none if v is None else format(v, spec)


def best_p50(row: dict) -> float | None:
    """The lowest p50 a row reached over its thread counts, None when it has no latency."""
    return min((s["p50"] for s in row.get("latency_ms") or []), default=None)


def _p50s(row: dict) -> dict:
    """p50 entry per thread count; Core ML rows (no thread setting) under 'evaluator'/'coreml'."""
    return {s["threads"] if s["threads"] is not None else row["runtime"]: s for s in row.get("latency_ms") or []}


def p50_cell(entry: dict | None) -> str:
    """p50 with its 95% interval, and '!' when the repetitions disagree (unstable)."""
    if entry is None:
        return "-"
    lo, hi = entry.get("p50_interval") or (None, None)
    interval = f" [{lo:.3f}-{hi:.3f}]" if lo is not None and len(entry.get("repetitions") or []) > 1 else ""
    return f"{entry['p50']:.3f}{interval}" + ("!" if entry.get("unstable") else "")


def table_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    keys = {t for a in report["artifacts"] for t in _p50s(a)}
    threads = sorted(k for k in keys if isinstance(k, int)) + sorted(k for k in keys if not isinstance(k, int))
    head = ["artifact", "runtime", "quant", "size KiB", "accuracy", "drop pp", "agreement", "max abs err", "SQNR dB"]
    head += [f"p50 ms @{t}t" if isinstance(t, int) else f"p50 ms {t}" for t in threads]
    head += ["mem MiB", "arena KiB", "status"]
    rows = []
    for a in report["artifacts"]:
        p50 = _p50s(a)
        sqnr = "exact" if a["sqnr_db"] is None and a["max_abs_error"] == 0 else _fmt(a["sqnr_db"], ".1f")
        rows.append([
            a["name"], a["runtime"], a["quantization"], f"{a['size_bytes'] / 1024:.1f}", _fmt(a["accuracy"], ".4f"),
            _fmt(a["accuracy_drop_pp"], "+.2f"), _fmt(a["agreement"], ".4f"), f"{a['max_abs_error']:.2e}", sqnr,
            *[p50_cell(p50.get(t)) for t in threads], *_memory_cells(a), status_cell(a),
        ])
    return head, rows


def status_cell(row: dict) -> str:
    """passed / failed / skipped, marked when the inputs are too few to resolve the gate."""
    return row["status"] + (" (underpowered)" if row.get("statistics", {}).get("underpowered") else "")


def shows_outputs(report: dict) -> bool:
    """A per-output table is worth its space unless the model is a single classifier."""
    outs = report.get("outputs") or []
    return len(outs) > 1 or any(o["kind"] != "classification" for o in outs)


def output_figure_text(o: dict) -> str:
    """The figures one output is judged on, in a few words."""
    if o["kind"] == "classification":
        acc = "" if o.get("accuracy") is None else f"accuracy {o['accuracy']:.4f} (drop {o['accuracy_drop_pp']:+.2f} pp), "
        return f"{acc}agreement {o['agreement']:.4f}, SQNR {_sqnr_text(o)}"
    if o["kind"] == "embedding":
        return f"cosine mean {o['cosine_mean']:.4f} / min {o['cosine_min']:.4f}, SQNR {_sqnr_text(o)}"
    rel = "unbounded" if o["max_rel_error"] is None else f"{o['max_rel_error']:.2%}"
    mae = "" if o.get("mae") is None else f", MAE {o['mae']:.4g} (reference {o['reference_mae']:.4g})"
    return f"max abs {o['max_abs_error']:.3g}, max {rel} of range, SQNR {_sqnr_text(o)}{mae}"


def _sqnr_text(o: dict) -> str:
    return "exact" if o["sqnr_db"] is None else f"{o['sqnr_db']:.1f} dB"


def output_table(report: dict) -> tuple[list[str], list[list[str]]]:
    """One line per artifact and output: its kind, the artifact's own name for it, figures, status."""
    head = ["artifact", "output", "kind", "artifact's name", "figures", "status"]
    rows = []
    for a in report["artifacts"]:
        for o in a["outputs"]:
            own = o.get("tflite_name") or o.get("coreml_name") or "-"
            rows.append([a["name"], o["name"], o["kind"], own, output_figure_text(o), o["status"]])
    return head, rows


def statistics_lines(report: dict) -> list[str]:
    """95% intervals of the headline proportions, and the rows the data cannot resolve."""
    lines = []
    for a in report["artifacts"]:
        parts = []
        if a.get("accuracy_interval"):
            lo, hi = a["accuracy_interval"]
            dlo, dhi = a["accuracy_drop_interval_pp"]
            parts.append(f"accuracy {a['accuracy']:.4f} [{lo:.4f}, {hi:.4f}], drop {a['accuracy_drop_pp']:+.2f} pp "
                         f"[{dlo:+.2f}, {dhi:+.2f}]")
        if a.get("agreement_interval"):
            lo, hi = a["agreement_interval"]
            parts.append(f"agreement {a['agreement']:.4f} [{lo:.4f}, {hi:.4f}]")
        notes = a.get("statistics", {}).get("notes") or []
        if parts or notes:
            lines.append(f"`{a['name']}`: {', '.join(parts) or 'no proportions'}"
                         + (f"; underpowered: {'; '.join(notes)}" if notes else ""))
    return lines


def _memory_cells(row: dict) -> list[str]:
    """Peak RSS above the empty-process baseline, and the tensor arena where it could be read."""
    mem = row.get("memory") or {}
    delta, arena = mem.get("rss_delta_bytes"), mem.get("arena_bytes")
    return [_fmt(None if delta is None else delta / 2**20, ".1f"), _fmt(None if arena is None else arena / 1024, ".1f")]


def stability_lines(report: dict) -> list[str]:
    """The latencies whose repetitions disagree, and what to do about it."""
    shaky = [f"{a['name']}" + (f" @{s['threads']}t" if s["threads"] else "") + f" (spread {s['spread']:.0%})"
             for a in report["artifacts"] for s in a.get("latency_ms") or [] if s.get("unstable")]
    if not shaky:
        return []
    from .repeat import UNSTABLE_SPREAD

    return [f"unstable latency (repetitions differ by more than {UNSTABLE_SPREAD:.0%} of the p50): {', '.join(shaky)}; "
            "the benchmark seems unstable: try more --repeat, fewer --threads, or an idle machine"]


def crosscheck_lines(report: dict) -> list[str]:
    """One line per artifact and thread count: mobilepack's p50 against Google's tool's median."""
    cc = report.get("crosscheck") or {}
    if not cc.get("enabled"):
        return []
    lines = []
    for a in report["artifacts"]:
        for c in a.get("crosscheck") or []:
            diff = "n/a" if c["difference"] is None else f"{c['difference'] * 100:+.1f}%"
            flag = "agrees" if c["agrees"] else f"DISAGREES (over {cc['limit'] * 100:.0f}%)"
            lo, hi = c.get("p50_interval") or (c["p50_ms"], c["p50_ms"])
            lines.append(f"`{a['name']}` @{c['threads']}t: p50 {c['p50_ms']:.3f} ms [{lo:.3f}-{hi:.3f}], Google's "
                         f"tool {c['google_median_ms']:.2f} ms ({diff}): {flag}")
    return lines


def _aligned(head: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """Columns padded to their widest cell; the first `left` columns flush left, numbers right."""
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return [line(r) for r in [head] + rows]


def metric_lines(report: dict) -> list[str]:
    """The user's --metric per artifact against the reference."""
    if not report.get("metric"):
        return []
    ref = report["reference"]["metrics"]
    lines = [f"metric {report['metric']['spec']} on the reference: "
             + ", ".join(f"{k} {v:.4g}" for k, v in ref.items())]
    for a in report["artifacts"]:
        lines.append(f"metric on {a['name']}: " + ", ".join(
            f"{k} {m['value']:.4g} (drop {m['drop']:+.4g}, {m['direction']})" for k, m in a["metrics"].items()))
    return lines


def text_table(report: dict) -> str:
    head, rows = table_rows(report)
    ref = report["reference"]
    ref_line = f"reference (keras): accuracy {_fmt(ref['accuracy'], '.4f')}, p50 {ref['latency_ms']['p50']:.3f} ms"
    cc = report.get("crosscheck") or {}
    cross = []
    if cc.get("enabled"):
        cross = ["cross-check with Google's benchmark tool: "
                 + (f"over {cc['limit']:.0%} apart for {', '.join(cc['disagreements'])} (see report.md)"
                    if cc["disagreements"] else f"every .tflite median within {cc['limit']:.0%}")]
    outputs = _aligned(*output_table(report), left=4) if shows_outputs(report) else []
    under = report["gate"].get("underpowered") or []
    power = [f"underpowered (too few inputs to resolve the gate; verdicts are point estimates): {', '.join(under)}"
             ] if under else []
    return "\n".join([ref_line, *_aligned(head, rows), *outputs, *metric_lines(report), *cross, *power,
                      *stability_lines(report), *recommendation_lines(report)])


def recommendation_lines(report: dict) -> list[str]:
    by_name = {a["name"]: a for a in report["artifacts"]}
    lines = []
    for platform, name in report.get("recommended", {}).items():
        if name:
            lines.append(f"recommended for {platform}: {name} ({by_name[name]['recommendation_reason']})")
        elif any(a["target"] == PLATFORMS[platform] for a in report["artifacts"]):
            lines.append(f"recommended for {platform}: none (no artifact passed its gate)")
    return lines


def markdown(report: dict) -> str:
    head, rows = table_rows(report)
    m, d, g = report["machine"], report["dataset"], report["gate"]
    checks = crosscheck_lines(report)
    verdict = {"passed": "PASSED", "failed": "FAILED", "not gated": "not gated (--no-gate)"}[g["verdict"]]
    out = [
        "# mobilepack benchmark report", "",
        f"**Gate: {verdict}** - {len(report['artifacts'])} artifact(s), {d['count']} inputs from "
        f"`{d['name']}` ({d['split']} split).", "",
        f"Measured on: {m['cpu']}, {m['cores']} cores ({', '.join(m['vector_extensions']) or 'no vector extensions seen'}), "
        f"{m['os']}, Python {m['python']}.", "",
        f"> {m['note']}", "",
        f"Reference (Keras): accuracy {_fmt(report['reference']['accuracy'], '.4f')}, "
        f"batch-1 p50 {report['reference']['latency_ms']['p50']:.3f} ms.", "",
        *[f"- {line[0].upper()}{line[1:]}" for line in recommendation_lines(report)], "",
        *_md_table(head, rows, left=3), "",
        *[f"Latency of `{runtime}` rows: {note}.\n" for runtime, note in _latency_notes(report)],
        f"Each latency was measured in {report.get('repeat', 1)} fresh process(es) per artifact and thread count, "
        "interleaved across artifacts; p50 is over every run of every repetition, [95% interval] from a "
        "bootstrap over repetitions and runs, `!` marks repetitions that disagree. `mem MiB` is the measuring "
        "process's peak resident memory above a process that loaded the same runtime and no model, `arena KiB` "
        "the TFLite tensor arena.", "",
        *[f"> {line}\n" for line in stability_lines(report)],
        *(["## Outputs", "", "Each output is judged by its kind (classification, regression, embedding).", "",
           *_md_table(*output_table(report), left=4), ""] if shows_outputs(report) else []),
        *(["## Task metric", "", *[f"- {line}" for line in metric_lines(report)], ""] if report.get("metric") else []),
        "## Statistics", "",
        "95% intervals: Wilson for accuracy and agreement, Newcombe's paired interval for the drop (same inputs). "
        "Verdicts come from the point estimates; an underpowered row has too few inputs to resolve its gate.", "",
        *[f"- {line}" for line in statistics_lines(report)], "",
        *(["## Cross-check with Google's benchmark tool", "",
           f"`{report['crosscheck']['tool']}` on the same files and thread counts (medians; it reports 0.01 ms).", "",
           *[f"- {line}" for line in checks], ""] if checks else []),
        "## Checks", "",
        *[f"- {'PASS' if a['status'] == 'passed' else a['status'].upper()} `{a['name']}`: {a['reason']}"
          + _search_note(a) for a in report["artifacts"]], "",
    ]
    return "\n".join(out)


def _md_table(head: list[str], rows: list[list[str]], left: int) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i < left else "---:" for i in range(len(head))) + "|",
            *["| " + " | ".join(r) + " |" for r in rows]]


def _latency_notes(report: dict) -> list[tuple[str, str]]:
    """Each runtime's latency note once (Core ML rows say what timed them)."""
    return sorted({(a["runtime"], a["latency_note"]) for a in report["artifacts"] if a.get("latency_note")})


def _search_note(row: dict) -> str:
    if "search_budget" not in row:
        return ""
    tried = ", ".join(f"{t['candidate']} ({t.get('compared') or _drop_text(t['val_drop_pp'])})" for t in row["search"])
    kept = row["float_layers"]
    floats = (f" {len(kept)} tensor(s) kept float ({', '.join(f['tensor'] for f in kept)}): "
              f"{row['float_layer_reason']}.") if kept else ""
    return f" Chosen within {row['search_budget']} on the validation data (tried {tried}).{floats}"


def _drop_text(drop) -> str:
    return "no labels" if drop is None else f"{drop:.2f} pp"


def write_report(report: dict, out_dir: Path, images=None) -> dict[str, Path]:
    """report.json, report.md and report.html, each written to a temp name and renamed into place."""
    from .html import render_html

    out_dir = Path(out_dir)
    paths = {"json": out_dir / "report.json", "md": out_dir / "report.md", "html": out_dir / "report.html"}
    atomic_write_json(paths["json"], report)
    atomic_write_text(paths["md"], markdown(report))
    atomic_write_text(paths["html"], render_html(report, images))
    return paths
