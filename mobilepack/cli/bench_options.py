"""The options `bench` and `demo` share, and what turns them into a BenchConfig and a finished report
(used by main.py; kept apart so main.py stays a thin layer of commands)."""

from __future__ import annotations

import sys
from pathlib import Path

import click


def split_list(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else ()


def parse_threads(value: str | None):
    if value is None:
        return None
    try:
        return tuple(int(v) for v in split_list(value))
    except ValueError:
        raise click.BadParameter(f"{value!r}: give whole numbers >= 1, e.g. --threads 1,2") from None


def bench_config(opts: dict, unsafe_load=False, dist=None, baseline=None):
    """BenchConfig from the shared bench options (as click passes them)."""
    from benchmarks.arm64.column import Arm64Options
    from benchmarks.bench import BenchConfig
    from benchmarks.gating.gate import parse_gate
    from benchmarks.latency.protocol import LatencyProtocol
    from benchmarks.parity.outputs import parse_output_kinds
    from benchmarks.parity.usermetric import parse_metric_limits
    from convert.budget import Budget, parse_min_sqnr

    _refuse_old_gate_spellings(opts)
    kwargs = {}
    if opts["threads"] is not None:
        kwargs["threads"] = parse_threads(opts["threads"])
    min_sqnr, per_output = parse_min_sqnr(opts["min_sqnr"])
    budget = Budget(parse_budget(opts["max_drop"]) or 1.0, min_sqnr, per_output)
    latency = LatencyProtocol(min_runs=opts["runs"], min_seconds=opts["min_seconds"],
                              warmup_seconds=opts["warmup_seconds"])
    return BenchConfig(data=opts.get("data") or _default_data(dist), latency=latency,
                       thresholds=parse_gate(opts["gate"]), gate=not opts["no_gate"], unsafe_load=unsafe_load,
                       baseline=baseline, crosscheck=not opts["no_crosscheck"],
                       output_kinds=parse_output_kinds(opts["output_kind"]), metric=opts["metric"],
                       metric_limits=parse_metric_limits(opts["max_metric_drop"]), budget=budget,
                       repeat=opts["repeat"], pin=opts["pin"], prefer_neural_engine=opts["prefer_neural_engine"],
                       arm64=Arm64Options(enabled=opts["arm64"], samples=opts["arm64_samples"]), **kwargs)


def _refuse_old_gate_spellings(opts: dict) -> None:
    """--max-drop QUANT=PP and --min-agreement QUANT=X were gate overrides; --gate is their one name now."""
    from convert.errors import UsageError

    for value in opts["max_drop"]:
        if "=" in value:
            quant, _, num = value.partition("=")
            raise UsageError(f"--max-drop {value}: a gate override is now spelled --gate {quant}.max_drop={num} "
                             "(--max-drop PP is the accuracy budget)")
    for value in opts["min_agreement"]:
        quant, _, num = value.partition("=")
        raise UsageError(f"--min-agreement {value}: now spelled --gate {quant}.min_agreement={num}")


def _default_data(dist) -> str:
    from benchmarks.evaldata import default_data_spec

    return default_data_spec(dist)


def finish_bench(document: dict, dist: Path, ui, junit: Path | None = None) -> None:
    """Print the table, write --junit, and exit 1 on a regression or a failed gate; `document` is report.json's."""
    from benchmarks.report.write import text_table
    from benchmarks.row import Report

    report = Report.from_json(document)
    click.echo(text_table(report))
    click.echo(f"report: {dist}/report.html, {dist}/report.json, {dist}/report.md  (measured on {report.machine['cpu']}; "
               "host latency, not phone latency)")
    base = report.baseline or None
    if junit:
        from benchmarks.report.junit import write_junit

        write_junit(junit, report, base["comparisons"] if base else None)
    if base and base["regressed"]:
        worst = next(c for c in base["comparisons"] if c["regressed"])
        click.echo(f"Error: regression against {base['path']} for {', '.join(base['regressed'])}: "
                   f"{worst['name']}: {'; '.join(worst['problems'])}", err=True)
        sys.exit(1)
    if report.gate["verdict"] == "failed":
        reasons = report.gate["reasons"]
        for name, reason in reasons.items():  # every failing artifact with its reason, not just the first
            click.echo(f"FAILED {name}: {reason}")
        click.echo(f"Error: gate failed for {len(reasons)} artifact(s): "
                   + " | ".join(f"{n}: {r}" for n, r in reasons.items()), err=True)
        sys.exit(1)


bench_options = [
    click.option("--threads", default=None, help="Comma list of thread counts for latency (default: 1 and all cores)."),
    click.option("--max-drop", multiple=True, metavar="PP",
                 help="Accuracy budget in percentage points (default 1): the recommended artifact must lose at most "
                      "this much on every labelled classification output, whatever its gate row allows."),
    click.option("--min-sqnr", multiple=True, metavar="DB|OUTPUT=DB",
                 help="Budget for outputs without labels: SQNR floor against Keras, for every output or one "
                      "(repeatable)."),
    click.option("--gate", multiple=True, metavar="QUANT.FIELD=X",
                 help="Override one gate limit, e.g. int8.max_drop=0.5, int8.min_agreement=0.99, int8.min_sqnr=30, "
                      "int8.max_rel_error=0.05, int8.min_cosine=0.99 (repeatable)."),
    click.option("--min-agreement", multiple=True, hidden=True),  # old spelling: refused with the new one
    click.option("--output-kind", multiple=True, metavar="NAME=KIND",
                 help="Judge output NAME as classification, regression or embedding (default: inferred from its "
                      "last activation)."),
    click.option("--metric", default=None, metavar="MODULE:FUNCTION",
                 help="Your own task metric, computed for the reference and every artifact. Runs your code: "
                      "only when named here."),
    click.option("--max-metric-drop", multiple=True, metavar="NAME=X",
                 help="Fail an artifact whose --metric NAME is worse than the reference's by more than X "
                      "(names starting with loss/error are lower-is-better)."),
    click.option("--no-gate", is_flag=True, help="Report only; exit 0 even when an artifact fails."),
    click.option("--runs", type=click.IntRange(min=2), default=50, show_default=True, help="Minimum timed runs per latency."),
    click.option("--min-seconds", type=click.FloatRange(min=0), default=1.0, show_default=True, metavar="S",
                 help="Minimum timed seconds per latency, as benchmark_model's --min_secs; runs go on until both "
                      "--runs and this are reached, e.g. --min-seconds 0 to time exactly --runs."),
    click.option("--warmup-seconds", type=click.FloatRange(min=0), default=0.5, show_default=True, metavar="S",
                 help="Minimum warm-up seconds before timing, as benchmark_model's --warmup_min_secs."),
    click.option("--repeat", type=click.IntRange(min=1), default=3, show_default=True,
                 help="Fresh processes per artifact and thread count, interleaved across artifacts; the p50 "
                      "interval and the baseline's significance test come from them."),
    click.option("--pin/--no-pin", default=False, show_default=True,
                 help="Keep each measuring process to one CPU per thread (os.sched_setaffinity)."),
    click.option("--no-crosscheck", is_flag=True,
                 help="Skip timing each .tflite again with Google's benchmark_litert_model.py (faster)."),
    click.option("--arm64/--no-arm64", default=True, show_default=True,
                 help="Run every .tflite again on LiteRT's ARM64 build under emulation (numerics only, needs "
                      "`mobilepack arm64 setup`; skipped with a note when missing), e.g. --no-arm64 to save time."),
    click.option("--arm64-samples", type=click.IntRange(min=1), default=64, show_default=True, metavar="N",
                 help="Inputs the emulated ARM64 pass runs (the first N), e.g. --arm64-samples 16."),
    click.option("--prefer-neural-engine/--smallest-ios", default=True, show_default=True,
                 help="iOS recommendation: an artifact that can use the Neural Engine before a smaller one that "
                      "cannot (a float32-compute ML Program), or just the smallest, e.g. --smallest-ios."),
]
def apply_options(options):
    def deco(fn):
        for opt in reversed(options):
            fn = opt(fn)
        return fn
    return deco


def parse_budget(values) -> float | None:
    """--max-drop PP: one accuracy budget in percentage points, or None when not given."""
    from convert.errors import UsageError

    if len(values) > 1:
        raise UsageError(f"--max-drop given {len(values)} budgets ({', '.join(values)}); give one number")
    if not values:
        return None
    try:
        value = float(values[0])
    except ValueError:
        raise UsageError(f"--max-drop {values[0]!r}: not a number of percentage points; e.g. --max-drop 0.5") from None
    if not value > 0:
        raise UsageError(f"--max-drop {values[0]}: the accuracy budget must be greater than 0, e.g. --max-drop 0.5")
    return value
