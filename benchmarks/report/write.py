"""report.json (the machine contract), report.md (for a pull request), the terminal table; report.html in html.py."""

from __future__ import annotations

import json
from pathlib import Path

from convert.manifest import PLATFORM_TARGET
from train.documents import NUMBER, Array, AtLeast, Maybe, load_document, shown
from train.errors import DocumentError, MobilepackError
from train.fsutil import replace_files

from benchmarks.report.html import render_html
from benchmarks.row import ABSENT, REPORT_SCHEMA_VERSION, ArtifactRow, Report, ReportFieldError, check_schema, given
from benchmarks.arm64.summary import arm64_intro, arm64_lines, device_lines, with_arm64
from benchmarks.report.summary import (compute_unit_lines, crosscheck_lines, executor_line, fmt, metric_lines, output_table,
                      not_converted_lines, recommendation_lines, shows_outputs, stability_lines, statistics_lines,
                      table_rows, text_columns, with_compute_units, with_not_converted)

# What `ship` and `bench --baseline` index in a report read back (report.schema.json is the whole contract).
_REPETITION = {"runs": AtLeast(int, 1), "samples": Array(NUMBER, length=101), "rss_delta_bytes?": Maybe(int)}
_LATENCY = {"threads": Maybe(int), "p50": NUMBER, "repetitions": Array(_REPETITION, min_length=1)}
_ROW = {"name": str, "target": str, "sha256": str, "status": str, "reason": Maybe(str), "runtime": str,
        "size_bytes": AtLeast(int, 1), "accuracy": Maybe(NUMBER), "latency_ms": Maybe([_LATENCY]),
        "memory": Maybe({"rss_delta_bytes?": Maybe(int)})}
REPORT_SPEC = {"schema_version": int, "machine": {"cpu": str}, "dataset": {"name": str, "split": str, "count": int},
               "recommended": {"android": Maybe(str), "ios": Maybe(str)}, "artifacts": [_ROW]}


def load_report(path: Path, fix: str, error: type[MobilepackError] = DocumentError) -> Report:
    """A report.json read back as a Report, every field `ship` and `bench --baseline` use checked; any fault is `error`."""
    try:
        report = Report.from_json(load_document(path, REPORT_SPEC, fix, REPORT_SCHEMA_VERSION, error), strict=False)
    except ReportFieldError as exc:
        raise error(f"{path}: {exc}; {fix}") from None
    for platform, target in PLATFORM_TARGET.items():
        name = report.recommended[platform]
        if name is not None and not any(r.name == name and r.target == target for r in report.artifacts):
            raise error(f"{path}: recommended.{platform} names {shown(name)}, which is no {target} row of artifacts; {fix}")
    return report


def _aligned(head: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """Columns padded to their widest cell; the first `left` columns flush left, numbers right."""
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return [line(r) for r in [head] + rows]


def text_table(report: Report) -> str:
    head, rows = with_not_converted(*table_rows(report), report)
    ref = report.reference
    ref_line = f"reference (keras): accuracy {fmt(ref['accuracy'], '.4f')}, p50 {ref['latency_ms']['p50']:.3f} ms"
    cc = report.crosscheck or {}
    cross = []
    if cc.get("enabled"):
        cross = ["cross-check with Google's benchmark tool: "
                 + (f"over {cc['limit']:.0%} apart for {', '.join(cc['disagreements'])} (see report.md)"
                    if cc["disagreements"] else f"every .tflite median within {cc['limit']:.0%}")]
    outputs = _aligned(*output_table(report), left=4) if shows_outputs(report) else []
    under = report.gate.get("underpowered") or []
    power = [f"underpowered (too few inputs to resolve the gate; verdicts are point estimates): {', '.join(under)}"
             ] if under else []
    return "\n".join([ref_line, *_aligned(head, rows), *not_converted_lines(report), *outputs, *metric_lines(report),
                      *cross, *power,
                      *stability_lines(report), *recommendation_lines(report)])


def markdown(report: Report) -> str:
    head, rows = with_not_converted(*with_arm64(*with_compute_units(*table_rows(report), report), report), report)
    units = compute_unit_lines(report)
    m, d, g = report.machine, report.dataset, report.gate
    checks = crosscheck_lines(report)
    verdict = {"passed": "PASSED", "failed": "FAILED", "not gated": "not gated (--no-gate)"}[g["verdict"]]
    out = [
        "# mobilepack benchmark report", "",
        f"**Gate: {verdict}** - {len(report.artifacts)} artifact(s), {d['count']} inputs from "
        f"`{d['name']}` ({d['split']} split).", "",
        f"Measured on: {m['cpu']}, {m['cores']} cores ({', '.join(m['vector_extensions']) or 'no vector extensions seen'}), "
        f"{m['os']}, Python {m['python']}.", "",
        f"> {m['note']}", "",
        *([executor_line(report), ""] if executor_line(report) else []),
        f"Reference (Keras): accuracy {fmt(report.reference['accuracy'], '.4f')}, "
        f"batch-1 p50 {report.reference['latency_ms']['p50']:.3f} ms.", "",
        *[f"- {line[0].upper()}{line[1:]}" for line in recommendation_lines(report)], "",
        *_md_table(head, rows, left=text_columns(head)), "",
        *[f"- {line}" for line in not_converted_lines(report)], *([""] if not_converted_lines(report) else []),
        *[f"Latency of `{runtime}` rows: {note}.\n" for runtime, note in _latency_notes(report)],
        f"Each latency was measured in {report.repeat} fresh process(es) per artifact and thread count, "
        "interleaved across artifacts; p50 is over every run of every repetition, [95% interval] from a "
        "bootstrap over repetitions and runs, `!` marks repetitions that disagree. `mem MiB` is the measuring "
        "process's peak resident memory above a process that loaded the same runtime and no model, `arena KiB` "
        "the TFLite tensor arena.", "",
        *[f"> {line}\n" for line in stability_lines(report)],
        *(["## Outputs", "", "Each output is judged by its kind (classification, regression, embedding).", "",
           *_md_table(*output_table(report), left=4), ""] if shows_outputs(report) else []),
        *(["## Core ML compute units", "",
           "The units each Core ML artifact can use, judged from its precision and ops (not measured on a device), "
           "every layer compressed otherwise than its variant says, and a NeuralNetwork's figures at both "
           "precisions: gpu/ane (float16, gated) and cpu (float32).", "",
           *[f"- {line}" for line in units], ""] if units else []),
        *(["## ARM64 (emulated Cortex-A76)", "",
           *([arm64_intro(report), ""] if report.arm64["status"] == "measured" else []),
           *[f"- {line}" for line in arm64_lines(report)], ""] if report.arm64 else []),
        *(["## On the device (benchmark_model)", "",
           "Figures a phone's `benchmark_model` measured (logs from `mobilepack device-bench`), not this host's.", "",
           *[f"- {line}" for line in device_lines(report)], ""] if device_lines(report) else []),
        *(["## Task metric", "", *[f"- {line}" for line in metric_lines(report)], ""] if report.metric else []),
        "## Statistics", "",
        "95% intervals: Wilson for accuracy and agreement, Newcombe's paired interval for the drop (same inputs). "
        "Verdicts come from the point estimates; an underpowered row has too few inputs to resolve its gate.", "",
        *[f"- {line}" for line in statistics_lines(report)], "",
        *(["## Cross-check with Google's benchmark tool", "",
           f"`{report.crosscheck['tool']}` on the same files and thread counts (medians; it reports 0.01 ms).", "",
           *[f"- {line}" for line in checks], ""] if checks else []),
        "## Checks", "",
        *[f"- {'PASS' if a.status == 'passed' else a.status.upper()} `{a.name}`: {a.reason}"
          + _search_note(a) for a in report.artifacts], "",
    ]
    return "\n".join(out)


def _md_table(head: list[str], rows: list[list[str]], left: int) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i < left else "---:" for i in range(len(head))) + "|",
            *["| " + " | ".join(r) + " |" for r in rows]]


def _latency_notes(report: Report) -> list[tuple[str, str]]:
    """Each runtime's latency note once (Core ML rows say what timed them)."""
    return sorted({(a.runtime, a.latency_note) for a in report.artifacts if a.latency_note})


def _search_note(row: ArtifactRow) -> str:
    if row.search_budget is ABSENT:
        return ""
    tried = ", ".join(f"{t.candidate} ({t.compared or _drop_text(given(t.val_drop_pp))})" for t in row.search)
    kept = row.float_layers
    floats = (f" {len(kept)} tensor(s) kept float ({', '.join(f.tensor for f in kept)}): "
              f"{row.float_layer_reason}.") if kept else ""
    return f" Chosen within {row.search_budget} on the validation data (tried {tried}).{floats}"


def _drop_text(drop) -> str:
    return "no labels" if drop is None else f"{drop:.2f} pp"


def write_report(report: Report, out_dir: Path, images=None, manifest_sha256: str | None = None) -> dict[str, Path]:
    """report.json, report.md and report.html, replaced as one set (see fsutil.replace_files).

    All three are rendered before anything is written, so the set is on disk only briefly.
    report.json comes last: where the folder cannot be swapped and the files go one by one,
    the machine contract is never newer than the pages beside it. With `manifest_sha256` (the
    manifest the report measured), a dist that a convert replaced meanwhile is left alone. A report
    that breaks report.schema.json is refused (ReportFieldError) before anything is written.
    """
    out_dir = Path(out_dir)
    document = report.to_json()
    check_schema(document)
    texts = {"report.md": markdown(report), "report.html": render_html(report, images),
             "report.json": json.dumps(document, indent=2, sort_keys=False) + "\n"}
    replace_files(out_dir, {name: text.encode("utf-8") for name, text in texts.items()},
                  unchanged={"manifest.json": manifest_sha256} if manifest_sha256 else None)
    return {"json": out_dir / "report.json", "md": out_dir / "report.md", "html": out_dir / "report.html"}
