"""report.json (the machine contract), report.md (for a pull request), the terminal table; report.html in html.py."""

from __future__ import annotations

from pathlib import Path

from train.fsutil import atomic_write_json, atomic_write_text

REPORT_SCHEMA_VERSION = 2  # 2: fresh-process memory, Google tool cross-check, latency quantiles
PLATFORMS = {"android": "tflite", "ios": "coreml"}  # the target each app embeds


def _fmt(v, spec: str, none: str = "-") -> str:
    return none if v is None else format(v, spec)


def best_p50(row: dict) -> float | None:
    """The lowest p50 a row reached over its thread counts, None when it has no latency."""
    return min((s["p50"] for s in row.get("latency_ms") or []), default=None)


def _p50s(row: dict) -> dict:
    """p50 per thread count; Core ML rows (no thread setting) under 'evaluator'/'coreml'."""
    return {s["threads"] if s["threads"] is not None else row["runtime"]: s["p50"] for s in row.get("latency_ms") or []}


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
            _fmt(a["accuracy_drop_pp"], "+.2f"), f"{a['agreement']:.4f}", f"{a['max_abs_error']:.2e}", sqnr,
            *[_fmt(p50.get(t), ".3f") for t in threads], *_memory_cells(a), a["status"],
        ])
    return head, rows


def _memory_cells(row: dict) -> list[str]:
    """Peak RSS above the empty-process baseline, and the tensor arena where it could be read."""
    mem = row.get("memory") or {}
    delta, arena = mem.get("rss_delta_bytes"), mem.get("arena_bytes")
    return [_fmt(None if delta is None else delta / 2**20, ".1f"), _fmt(None if arena is None else arena / 1024, ".1f")]


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
            lines.append(f"`{a['name']}` @{c['threads']}t: p50 {c['p50_ms']:.3f} ms, Google's tool "
                         f"{c['google_median_ms']:.2f} ms ({diff}): {flag}")
    return lines


def text_table(report: dict) -> str:
    head, rows = table_rows(report)
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    ref = report["reference"]
    ref_line = f"reference (keras): accuracy {_fmt(ref['accuracy'], '.4f')}, p50 {ref['latency_ms']['p50']:.3f} ms"
    cc = report.get("crosscheck") or {}
    cross = []
    if cc.get("enabled"):
        cross = ["cross-check with Google's benchmark tool: "
                 + (f"over {cc['limit']:.0%} apart for {', '.join(cc['disagreements'])} (see report.md)"
                    if cc["disagreements"] else f"every .tflite median within {cc['limit']:.0%}")]
    return "\n".join([ref_line, line(head), *[line(r) for r in rows], *cross, *recommendation_lines(report)])


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
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" if i < 3 else "---:" for i in range(len(head))) + "|",
        *["| " + " | ".join(r) + " |" for r in rows], "",
        *[f"Latency of `{runtime}` rows: {note}.\n" for runtime, note in _latency_notes(report)],
        "Each latency was measured in a fresh process per artifact and thread count; `mem MiB` is that process's "
        "peak resident memory above a process that loaded the same runtime and no model, `arena KiB` the TFLite "
        "tensor arena.", "",
        *(["## Cross-check with Google's benchmark tool", "",
           f"`{report['crosscheck']['tool']}` on the same files and thread counts (medians; it reports 0.01 ms).", "",
           *[f"- {line}" for line in checks], ""] if checks else []),
        "## Checks", "",
        *[f"- {'PASS' if a['status'] == 'passed' else a['status'].upper()} `{a['name']}`: {a['reason']}"
          + _search_note(a) for a in report["artifacts"]], "",
    ]
    return "\n".join(out)


def _latency_notes(report: dict) -> list[tuple[str, str]]:
    """Each runtime's latency note once (Core ML rows say what timed them)."""
    return sorted({(a["runtime"], a["latency_note"]) for a in report["artifacts"] if a.get("latency_note")})


def _search_note(row: dict) -> str:
    if "budget_pp" not in row:
        return ""
    tried = ", ".join(f"{t['candidate']} {t['val_drop_pp']:.2f} pp" for t in row["search"])
    kept = row["float_layers"]
    floats = (f" {len(kept)} tensor(s) kept float ({', '.join(f['tensor'] for f in kept)}): "
              f"{row['float_layer_reason']}.") if kept else ""
    return f" Chosen within {row['budget_pp']:g} pp on the validation split (tried {tried}).{floats}"


def write_report(report: dict, out_dir: Path, images=None) -> dict[str, Path]:
    """report.json, report.md and report.html, each written to a temp name and renamed into place."""
    from .html import render_html

    out_dir = Path(out_dir)
    paths = {"json": out_dir / "report.json", "md": out_dir / "report.md", "html": out_dir / "report.html"}
    atomic_write_json(paths["json"], report)
    atomic_write_text(paths["md"], markdown(report))
    atomic_write_text(paths["html"], render_html(report, images))
    return paths
