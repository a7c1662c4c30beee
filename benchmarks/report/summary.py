"""What every report shows of a bench, formatted once: the table, the per-output table and the check lines.

write.py writes the terminal table, report.md and report.json from these; html.py writes report.html.
"""

from __future__ import annotations

from convert.manifest import PLATFORM_TARGET

from benchmarks.latency.repeat import UNSTABLE_SPREAD
from benchmarks.parity.precision import GATE_QUANTIZATION
from benchmarks.row import ABSENT, ArtifactRow, CpuFigures, LatencyEntry, OutputFigures, Report, given


def fmt(v, spec: str, none: str = "-") -> str:
    return none if v is None else format(v, spec)


def _p50s(row: ArtifactRow) -> dict:
    """p50 entry per thread count; Core ML rows (no thread setting) under their runtime, 'coreml-reference' or 'coreml'."""
    return {s.threads if s.threads is not None else row.runtime: s for s in row.latency_ms or []}


def p50_cell(entry: LatencyEntry | None) -> str:
    """p50 with its 95% interval, and '!' when the repetitions disagree (unstable)."""
    if entry is None:
        return "-"
    lo, hi = entry.p50_interval or (None, None)
    interval = f" [{lo:.3f}-{hi:.3f}]" if lo is not None and len(entry.repetitions or []) > 1 else ""
    return f"{entry.p50:.3f}{interval}" + ("!" if entry.unstable else "")


def table_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    keys = {t for a in report.artifacts for t in _p50s(a)}
    threads = sorted(k for k in keys if isinstance(k, int)) + sorted(k for k in keys if not isinstance(k, int))
    head = ["artifact", "runtime", "quant", "size KiB", "accuracy", "drop pp", "agreement", "max abs err", "SQNR dB"]
    head += [f"p50 ms @{t}t" if isinstance(t, int) else f"p50 ms {t}" for t in threads]
    head += ["mem MiB", "arena KiB", "status"]
    rows = []
    for a in report.artifacts:
        p50 = _p50s(a)
        sqnr = "exact" if a.sqnr_db is None and a.max_abs_error == 0 else fmt(a.sqnr_db, ".1f")
        rows.append([
            a.name, a.runtime, a.quantization, f"{a.size_bytes / 1024:.1f}", fmt(a.accuracy, ".4f"),
            fmt(a.accuracy_drop_pp, "+.2f"), fmt(a.agreement, ".4f"), f"{a.max_abs_error:.2e}", sqnr,
            *[p50_cell(p50.get(t)) for t in threads], *_memory_cells(a), status_cell(a),
        ])
    return head, rows


def with_not_converted(head: list[str], rows: list[list[str]], report: Report) -> tuple[list[str], list[list[str]]]:
    """The table with a row for each variant `convert` could not make: its name, quantization and
    'not converted' (the reason is in not_converted_lines)."""
    extra = []
    for f in report.not_converted or []:
        row = ["-"] * len(head)
        row[0], row[head.index("quant")], row[-1] = f["name"], f["quantization"], "not converted"
        extra.append(row)
    return head, rows + extra


def not_converted_lines(report: Report) -> list[str]:
    """Why each variant that is not in the dist failed to convert (from the manifest)."""
    return [f"`{f['name']}`: not converted: {f['reason']}" for f in report.not_converted or []]


def with_compute_units(head: list[str], rows: list[list[str]], report: Report) -> tuple[list[str], list[list[str]]]:
    """The table with 'compute units' and 'precision' (of the row's figures) columns after 'quant' when it has
    Core ML rows (report.md, report.html)."""
    if not any(a.compute_units for a in report.artifacts):
        return head, rows
    at = head.index("quant") + 1
    cells = [[a.compute_units or "-", a.precision or "-"] for a in report.artifacts]
    return head[:at] + ["compute units", "precision"] + head[at:], [r[:at] + c + r[at:] for r, c in zip(rows, cells)]


def text_columns(head: list[str]) -> int:
    """How many leading columns of the table hold text (flush left): up to 'quant' and the Core ML columns."""
    return head.index("quant") + 1 + sum(c in head for c in ("compute units", "precision"))


def compute_unit_lines(report: Report) -> list[str]:
    """Why each Core ML row can use the units it can, and every layer compressed otherwise than its variant says."""
    lines = []
    for a in report.artifacts:
        if a.compute_units:
            lines.append(f"`{a.name}`: {a.compute_units} ({a.compute_units_note})")
        if a.cpu_figures:
            lines.append(f"`{a.name}`: {precision_note(a)}")
        for f in a.compression_fallbacks or []:
            how = ("left uncompressed" if f.uncompressed else
                   f"block size {f.block_size}" if f.block_size is not ABSENT else f"group size {f.group_size}")
            lines.append(f"`{a.name}`: weight `{f.weight}` {list(f.shape)}: {how}, {f.reason}")
    return lines


def precision_note(row: ArtifactRow) -> str:
    """Both figures of a NeuralNetwork row in one sentence (empty for any other row)."""
    cpu = row.cpu_figures
    if not cpu:
        return ""
    judged = ("at gpu/ane precision (float16, as the GPU and Neural Engine run it)" if row.precision == "gpu/ane"
              else "as Core ML ran it on all compute units")
    return (f"judged {judged} against the {GATE_QUANTIZATION} limits: {figures_text(row)}; "
            f"at cpu precision (float32): {figures_text(cpu)}")


def figures_text(figures: ArtifactRow | CpuFigures) -> str:
    """Drop, agreement and SQNR, those a row has."""
    parts = []
    if figures.accuracy_drop_pp is not None:
        parts.append(f"drop {figures.accuracy_drop_pp:+.2f} pp")
    if figures.agreement is not None:
        parts.append(f"agreement {figures.agreement:.4f}")
    parts.append("SQNR exact" if figures.sqnr_db is None else f"SQNR {figures.sqnr_db:.1f} dB")
    return ", ".join(parts)


def status_cell(row: ArtifactRow) -> str:
    """passed / failed / skipped, marked when the inputs are too few to resolve the gate."""
    return row.status + (" (underpowered)" if row.statistics.underpowered else "")


def _memory_cells(row: ArtifactRow) -> list[str]:
    """Peak RSS above the empty-process baseline, and the tensor arena where it could be read."""
    delta, arena = (row.memory.rss_delta_bytes, row.memory.arena_bytes) if row.memory else (None, None)
    return [fmt(None if delta is None else delta / 2**20, ".1f"), fmt(None if arena is None else arena / 1024, ".1f")]


def shows_outputs(report: Report) -> bool:
    """A per-output table is worth its space unless the model is a single classifier."""
    outs = report.outputs or []
    return len(outs) > 1 or any(o["kind"] != "classification" for o in outs)


def output_figure_text(o: OutputFigures) -> str:
    """The figures one output is judged on, in a few words."""
    if o.kind == "classification":
        acc = "" if given(o.accuracy) is None else f"accuracy {o.accuracy:.4f} (drop {o.accuracy_drop_pp:+.2f} pp), "
        return f"{acc}agreement {o.agreement:.4f}, SQNR {_sqnr_text(o)}"
    if o.kind == "embedding":
        return f"cosine mean {o.cosine_mean:.4f} / min {o.cosine_min:.4f}, SQNR {_sqnr_text(o)}"
    rel = "unbounded" if o.max_rel_error is None else f"{o.max_rel_error:.2%}"
    mae = "" if given(o.mae) is None else f", MAE {o.mae:.4g} (reference {o.reference_mae:.4g})"
    return f"max abs {o.max_abs_error:.3g}, max {rel} of range, SQNR {_sqnr_text(o)}{mae}"


def _sqnr_text(o: OutputFigures) -> str:
    return "exact" if o.sqnr_db is None else f"{o.sqnr_db:.1f} dB"


def output_table(report: Report) -> tuple[list[str], list[list[str]]]:
    """One line per artifact and output: its kind, the artifact's own name for it, figures, status."""
    head = ["artifact", "output", "kind", "artifact's name", "figures", "status"]
    rows = []
    for a in report.artifacts:
        for o in a.outputs:
            rows.append([a.name, o.name, o.kind, o.own_name or "-", output_figure_text(o), o.status])
    return head, rows


def statistics_lines(report: Report) -> list[str]:
    """95% intervals of the headline proportions, and the rows the data cannot resolve."""
    lines = []
    for a in report.artifacts:
        parts = []
        if a.accuracy_interval:
            lo, hi = a.accuracy_interval
            dlo, dhi = a.accuracy_drop_interval_pp
            parts.append(f"accuracy {a.accuracy:.4f} [{lo:.4f}, {hi:.4f}], drop {a.accuracy_drop_pp:+.2f} pp "
                         f"[{dlo:+.2f}, {dhi:+.2f}]")
        if a.agreement_interval:
            lo, hi = a.agreement_interval
            parts.append(f"agreement {a.agreement:.4f} [{lo:.4f}, {hi:.4f}]")
        notes = a.statistics.notes or []
        if parts or notes:
            lines.append(f"`{a.name}`: {', '.join(parts) or 'no proportions'}"
                         + (f"; underpowered: {'; '.join(notes)}" if notes else ""))
    return lines


def stability_lines(report: Report) -> list[str]:
    """The latencies whose repetitions disagree, and what to do about it."""
    shaky = [f"{a.name}" + (f" @{s.threads}t" if s.threads else "") + f" (spread {s.spread:.0%})"
             for a in report.artifacts for s in a.latency_ms or [] if s.unstable]
    if not shaky:
        return []
    return [f"unstable latency (repetitions differ by more than {UNSTABLE_SPREAD:.0%} of the p50): {', '.join(shaky)}; "
            "the benchmark seems unstable: try more --repeat, fewer --threads, or an idle machine"]


def crosscheck_lines(report: Report) -> list[str]:
    """One line per artifact and thread count: mobilepack's p50 against Google's tool's median."""
    cc = report.crosscheck or {}
    if not cc.get("enabled"):
        return []
    lines = []
    for a in report.artifacts:
        for c in a.crosscheck or []:
            diff = "n/a" if c.difference is None else f"{c.difference * 100:+.1f}%"
            flag = "agrees" if c.agrees else f"DISAGREES (over {cc['limit'] * 100:.0f}%)"
            lo, hi = c.p50_interval or (c.p50_ms, c.p50_ms)
            lines.append(f"`{a.name}` @{c.threads}t: p50 {c.p50_ms:.3f} ms [{lo:.3f}-{hi:.3f}], Google's "
                         f"tool {c.google_median_ms:.2f} ms ({diff}): {flag}")
    return lines


def metric_lines(report: Report) -> list[str]:
    """The user's --metric per artifact against the reference."""
    if not report.metric:
        return []
    ref = report.reference["metrics"]
    lines = [f"metric {report.metric['spec']} on the reference: "
             + ", ".join(f"{k} {v:.4g}" for k, v in ref.items())]
    for a in report.artifacts:
        lines.append(f"metric on {a.name}: " + ", ".join(
            f"{k} {m.value:.4g} (drop {m.drop:+.4g}, {m.direction})" for k, m in a.metrics.items()))
    return lines


def recommendation_lines(report: Report) -> list[str]:
    lines = []
    for platform, name in (report.recommended or {}).items():
        if name:
            lines.append(f"recommended for {platform}: {name} ({report.row(name).recommendation_reason})")
        elif any(a.target == PLATFORM_TARGET[platform] for a in report.artifacts):
            lines.append(f"recommended for {platform}: none (no artifact passed its gate)")
    return lines


def executor_line(report: Report) -> str | None:
    """Where accuracy was evaluated, and where latency was measured (this machine or --latency-on's Ray node)."""
    ex = report.executor
    if not ex:
        return None
    where = ("in this process" if ex["name"] == "local" else
             f"on Ray ({ex['address'] or 'a local runtime'}), {ex['workers']} worker(s), {ex['shards']} shard(s)")
    node = (report.machine or {}).get("node")
    on = (f"on Ray node {node['id'][:12]} ({node['address']}{''.join(f', {k}={v}' for k, v in node['labels'].items())})"
          if node else "on this machine")
    return f"Accuracy evaluated {where} in {ex['evaluation_wall_s']:.1f} s; latency measured {on}, one artifact at a time."
