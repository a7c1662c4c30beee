"""`mobilepack bench`: every artifact against the Keras reference, then the gate."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from convert.budget import Budget
from convert.manifest import load_manifest, verify_artifacts
from train.fsutil import check_replaceable
from train.loading import load_keras_model, sha256_file

from benchmarks.errors import BenchDataError, ThresholdError
from benchmarks.distributed.executor import EvalJob, EvalResult, ExecutorSpec, executor_record, timed_evaluate
from benchmarks.distributed.pool import open_executor
from benchmarks.evaldata import EvalData, label_arrays, load_eval_data
from benchmarks.gating.gate import DEFAULT_THRESHOLDS, GateCase, Threshold, judge, statistics, threshold_dict
from benchmarks.parity.outputs import OutputSpec, artifact_output_names, describe_outputs, first_classification, resolve_labels
from benchmarks.parity.per_output import headline, output_figures, reference_figures
from benchmarks.parity.usermetric import check_metric_limits, load_metric, metric_entry
from benchmarks.arm64.column import Arm64Data, Arm64Options, arm64_pass
from benchmarks.parity.compute_units import compute_units
from benchmarks.phone.results import load_device_results
from benchmarks.latency.crosscheck import AGREEMENT_LIMIT, GOOGLE_TOOL
from benchmarks.parity.precision import SUGGESTION as PRECISION_SUGGESTION, gate_quantization, is_neural_network, precision_fields
from benchmarks.latency.protocol import LatencyProtocol
from benchmarks.latency.macs import tflite_macs
from benchmarks.distributed.node_latency import find_latency_node, latency_meter
from benchmarks.latency.phase import measure_all
from benchmarks.gating.recommend import recommend
from benchmarks.gating.regression import REGRESSION_LIMITS, check_same_data, compare, load_baseline
from benchmarks.report.worst import worst_artifact
from benchmarks.report.write import write_report
from benchmarks.report.summary import precision_note
from benchmarks.row import REPORT_SCHEMA_VERSION, Arm64Block, ArtifactRow, DeviceBlock, MetricEntry, OutputFigures, Report
from benchmarks.runners import KerasRunner, predict_batched

Progress = Callable[[str, int, int], None]


def default_threads() -> tuple[int, ...]:
    cores = os.cpu_count() or 1
    return (1,) if cores == 1 else (1, cores)


@dataclass(frozen=True)
class BenchConfig:
    data: str = "digits"
    threads: tuple[int, ...] = field(default_factory=default_threads)
    batch_size: int = 32
    latency: LatencyProtocol = field(default_factory=LatencyProtocol)
    thresholds: dict = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    gate: bool = True
    unsafe_load: bool = False
    baseline: Path | None = None  # a previous report.json to diff against
    crosscheck: bool = True  # also time every .tflite with Google's benchmark_litert_model.py
    output_kinds: dict = field(default_factory=dict)  # --output-kind NAME=KIND overrides
    metric: str | None = None  # --metric module:function (user code: runs only when named)
    metric_limits: dict = field(default_factory=dict)  # --max-metric-drop NAME=VALUE
    budget: Budget = field(default_factory=lambda: Budget(max_drop_pp=1.0))  # what the recommendation must stay within
    repeat: int = 3  # fresh processes per artifact x thread count, interleaved across artifacts
    pin: bool = False  # keep each measuring process to one CPU per thread
    prefer_neural_engine: bool = True  # iOS: one that can use the Neural Engine before a smaller one that cannot
    executor: ExecutorSpec = field(default_factory=lambda: ExecutorSpec("local"))  # where accuracy evaluation runs
    latency_on: str | None = None  # a Ray node (IP, node ID prefix, label key=value) that measures latency instead
    custom_objects: tuple[str, ...] = ()  # --custom-objects specs, for Ray workers that load the Keras reference
    arm64: Arm64Options = field(default_factory=Arm64Options)  # the emulated ARM64 column (numerics only)
    device_results: Path | None = None  # benchmark_model logs from a phone (`mobilepack device-bench`)

    def __post_init__(self):
        bad = [t for t in self.threads if t < 1]
        if bad or not self.threads:
            raise ThresholdError(f"--threads {bad[0] if bad else ''}: thread counts must be whole numbers >= 1, e.g. --threads 1,2")
        if self.batch_size < 1:
            raise ThresholdError(f"--batch-size must be >= 1, got {self.batch_size}")
        if not isinstance(self.arm64.samples, int) or self.arm64.samples < 1:
            raise ThresholdError(f"--arm64-samples {self.arm64.samples}: give a whole number >= 1, e.g. --arm64-samples 64")
        if not isinstance(self.repeat, int) or self.repeat < 1:
            raise ThresholdError(f"--repeat {self.repeat}: give a whole number of repetitions >= 1, e.g. --repeat 3")


def run_bench(dist: Path, config: BenchConfig, log: Callable[[str], None] = print,
              progress: Progress | None = None) -> dict:
    """Evaluate every artifact in `dist`'s manifest; write report.json/.md/.html into `dist`; return report.json's
    document (`Report.from_json` reads it back)."""
    dist = Path(dist)
    config, threads_note = _cap_threads(config)
    baseline = load_baseline(config.baseline) if config.baseline else None
    manifest_sha256 = sha256_file(dist / "manifest.json") if (dist / "manifest.json").is_file() else None
    manifest = load_manifest(dist)
    verify_artifacts(manifest, dist)
    device = load_device_results(config.device_results, manifest, dist) if config.device_results else {}
    check_replaceable(dist, f"bench writes its reports beside the manifest: make it writable or copy {dist} "
                            "somewhere writable and bench the copy")  # before the slow part
    ref_path = dist / manifest.source["model_file"]
    if not ref_path.is_file() or sha256_file(ref_path) != manifest.source["model_sha256"]:
        raise BenchDataError(f"{ref_path}: reference model missing or altered; re-run `mobilepack convert`")
    device = {name: DeviceBlock.from_json(block) for name, block in device.items()}
    run = _Run(dist, config, manifest, manifest_sha256, baseline, threads_note, device, log, progress)
    with open_executor(config.executor, config.custom_objects) as executor:  # a cluster is checked here, before
        node = find_latency_node(executor, config.latency_on)  # the slow part, and so is --latency-on's node
        return _bench(run, executor, node).to_json()


@dataclass(frozen=True)
class _Run:
    """What run_bench checked before the slow part, and where it reports: everything _bench works from."""

    dist: Path
    config: BenchConfig
    manifest: object  # convert.manifest.Manifest
    manifest_sha256: str | None  # the manifest measured: a dist a convert replaced meanwhile is not written over
    baseline: Report | None
    threads_note: str | None
    device: dict  # artifact name -> DeviceBlock
    log: Callable[[str], None]
    progress: Progress | None


def _bench(run: _Run, executor, node) -> Report:
    config, manifest, dist = run.config, run.manifest, run.dist
    ref_path = dist / manifest.source["model_file"]
    model = load_keras_model(ref_path, unsafe=config.unsafe_load)
    specs = describe_outputs(model, config.output_kinds)
    user_metric = load_metric(config.metric)
    names = [t.name for t in model.inputs]
    data = load_eval_data(config.data, manifest, dist, model, run.log)
    labels = resolve_labels(label_arrays(data), specs, data.count, data.name)
    run.log(f"evaluating on {data.count} inputs from {data.name} ({data.split} split)")

    jobs = [EvalJob("reference", "keras", ref_path, manifest.source["model_sha256"], unsafe_load=config.unsafe_load,
                    custom_objects=config.custom_objects, local_runner=KerasRunner(model))]
    jobs += [EvalJob(a.name, a.target, a.path(dist), a.sha256, num_threads=max(config.threads), input_names=names)
             for a in manifest.artifacts]
    results, eval_wall = timed_evaluate(executor, jobs, list(data.inputs), config.batch_size, run.progress)
    ctx = _Context(data, specs, labels, results[0].outputs, user_metric, config, names)
    reference = _reference(ctx)
    ctx.reference_metrics = reference["metrics"]
    check_metric_limits(config.metric_limits, user_metric, reference.get("metrics") or {})
    rows = [_artifact_row(a, dist, ctx, r, run.progress) for a, r in zip(manifest.artifacts, results[1:])]
    arm64 = _arm64(manifest.artifacts, rows, dist, ctx, run.log)
    for row in rows:
        row.device = run.device.get(row.name)  # the phone's own figures, beside the host's, never mixed
    with latency_meter(node, executor, jobs, data.inputs, config.latency, names) as meter:  # eval workers gone first
        reference["latency_ms"] = meter.reference_latency(jobs[0])
        runtimes = {r.name: r.runtime for r in rows}
        timings = measure_all(runtimes, dist, manifest.artifacts, config, run.progress, meter)
        machine = meter.machine
    for a, row in zip(manifest.artifacts, rows):
        row.set_fields(timings[a.name])
        row.macs, row.gmacs_per_s = _work(a, a.path(dist), row)
    recommended = recommend(rows, config.budget, config.prefer_neural_engine)
    blocks = {"machine": machine, "reference": reference, "recommended": recommended, "arm64": arm64,
              "executor": executor_record(executor, eval_wall)}
    report = _report(run, ctx, rows, blocks)
    if run.baseline is not None:
        check_same_data(config.baseline, run.baseline, report)
        comparisons = compare(report, run.baseline)
        report.baseline = {"path": str(config.baseline), "limits": REGRESSION_LIMITS, "comparisons": comparisons,
                           "regressed": [c["name"] for c in comparisons if c["regressed"]]}
    write_report(report, dist, data.images, run.manifest_sha256)  # not over a dist a convert replaced meanwhile
    return report


def _report(run: _Run, ctx: _Context, rows: list[ArtifactRow], blocks: dict) -> Report:
    """The report around the rows: the run's context, the gate over every row, the worst artifact."""
    config, manifest, data, labels = run.config, run.manifest, ctx.data, ctx.labels
    failed = [r for r in rows if r.status == "failed"]
    first = first_classification(ctx.specs)
    class_labels = labels.get(first.name) if first else None
    return Report(
        schema_version=REPORT_SCHEMA_VERSION,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        machine=blocks["machine"],
        dataset={"name": data.name, "split": data.split, "count": data.count, "has_labels": bool(labels),
                 "labelled_outputs": sorted(labels)},
        manifest={"path": "manifest.json", "source_model_sha256": manifest.source["model_sha256"]},
        outputs=[{"name": s.name, "kind": s.kind, "kind_source": s.kind_source, "shape": list(s.shape)}
                 for s in ctx.specs],
        reference=blocks["reference"],
        thresholds={q: threshold_dict(t) for q, t in config.thresholds.items()},
        budget=config.budget.to_dict(),
        metric=({"spec": ctx.user_metric.spec, "limits": config.metric_limits} if ctx.user_metric else None),
        threads={"measured": list(config.threads), "note": run.threads_note},
        repeat=config.repeat, pinned=config.pin,
        executor=blocks["executor"],
        gate={"enabled": config.gate, "verdict": ("failed" if failed else "passed") if config.gate else "not gated",
              "failed": [r.name for r in failed], "reasons": {r.name: r.reason for r in failed},
              "underpowered": [r.name for r in rows if r.statistics.underpowered]},
        recommended=blocks["recommended"],
        crosscheck={"enabled": config.crosscheck, "tool": GOOGLE_TOOL, "limit": AGREEMENT_LIMIT,
                    "disagreements": [r.name for r in rows if not all(c.agrees for c in r.crosscheck)]},
        arm64=blocks["arm64"],
        device_results={"path": str(config.device_results), "artifacts": sorted(run.device)} if run.device else None,
        artifacts=rows,
        # asked for, but convert could not make them: no file to bench, only why (the manifest's `failed`)
        not_converted=[{"name": f.name, "target": f.target, "format": f.format, "quantization": f.quantization,
                        "reason": f.reason} for f in manifest.failed],
        worst=worst_artifact(rows, ctx.predictions, ctx.ref_out, first, class_labels, manifest.labels),
    )


@dataclass
class _Context:
    """What every artifact row is computed against: the data, its labels and the reference's outputs."""

    data: EvalData
    specs: list[OutputSpec]
    labels: dict  # output name -> labels
    ref_out: list[np.ndarray]
    user_metric: object
    config: BenchConfig
    input_names: list[str]
    reference_metrics: dict | None = None  # the --metric values of the Keras model
    predictions: dict = field(default_factory=dict)  # artifact name -> outputs, for the worst artifact

    def outputs_by_name(self, outputs: list[np.ndarray]) -> dict:
        return {s.name: outputs[s.index] for s in self.specs}


def _reference(ctx: _Context) -> dict:
    outputs = [reference_figures(s, ctx.ref_out[s.index], ctx.labels.get(s.name)) for s in ctx.specs]
    first = next((o for o in outputs if o["kind"] == "classification"), None)
    metrics_ = (ctx.user_metric.compute(ctx.data.inputs, ctx.outputs_by_name(ctx.ref_out), ctx.labels,
                                        "the Keras reference") if ctx.user_metric else None)
    return {
        "runtime": KerasRunner.runtime,
        "accuracy": first.get("accuracy") if first else None,
        "accuracy_interval": first.get("accuracy_interval") if first else None,
        "outputs": outputs,
        "metrics": metrics_,
    }


def _artifact_row(artifact, dist: Path, ctx: _Context, result: EvalResult, progress) -> ArtifactRow:
    """The one place a report row is made: every figure but the ARM64, phone, latency and recommendation ones,
    which later stages of the bench set on it (placeholders until then)."""
    config = ctx.config
    path = artifact.path(dist)
    out = result.outputs  # computed by the executor: here, or on Ray workers
    figures = _output_figures(artifact, out, ctx)
    outputs = [OutputFigures.from_json(o) for o in figures]
    metrics_ = _user_metrics(ctx, out, artifact.name)
    ctx.predictions[artifact.name] = out
    case = GateCase(artifact.file, artifact.quantization, _threshold(artifact, config), ctx.data.count,
                    config.metric_limits, PRECISION_SUGGESTION if is_neural_network(artifact) else None)
    status, reason = judge(outputs, metrics_, case)
    precision = precision_fields(artifact, path, result, lambda cpu: _figures(artifact, cpu, ctx, progress,
                                                                              f"{artifact.name} (cpu)")[1])
    row = ArtifactRow(
        name=artifact.name, target=artifact.target, format=artifact.format, quantization=artifact.quantization,
        path=artifact.file, size_bytes=artifact.size_bytes, sha256=artifact.sha256, runtime=result.runtime,
        **ArtifactRow.parse_fields(headline(figures)),
        outputs=outputs, metrics=metrics_,
        **ArtifactRow.parse_fields({**_search_fields(artifact), **_coreml_fields(artifact, path), **precision}),
        status=status, reason=reason, statistics=statistics(outputs, case),
        arm64=None, device=None, latency_ms=[], latency_note=None, memory=None, crosscheck=[], macs=None,
        gmacs_per_s=None, within_budget=False, budget_check="", recommended=False, recommendation_reason="",
    )
    if row.cpu_figures:
        row.reason += f" ({precision_note(row)})"
    return row


def _figures(artifact, runner, ctx: _Context, progress, label: str) -> tuple[list[np.ndarray], list[dict]]:
    """`runner`'s outputs over the eval data, and every output's figures against the reference."""
    out = predict_batched(runner, list(ctx.data.inputs), ctx.config.batch_size, progress, label)
    return out, _output_figures(artifact, out, ctx)


def _output_figures(artifact, out: list[np.ndarray], ctx: _Context) -> list[dict]:
    return [{**output_figures(s, out[s.index], ctx.ref_out[s.index], ctx.labels.get(s.name)), **own}
            for s, own in zip(ctx.specs, artifact_output_names(artifact, ctx.specs))]


def _arm64(artifacts, rows: list[ArtifactRow], dist: Path, ctx: _Context, log) -> dict:
    """Every .tflite again on LiteRT's ARM64 build under emulation: one `arm64` block per row, never a latency."""
    tflite = [(a.name, a.path(dist)) for a in artifacts if a.target == "tflite"]
    data = Arm64Data(list(ctx.data.inputs), ctx.ref_out, ctx.specs, ctx.input_names, ctx.config.batch_size)
    summary, blocks, outputs = arm64_pass(tflite, data, ctx.config.arm64)
    for row, artifact in zip(rows, artifacts):
        block = blocks.get(row.name)
        row.arm64 = None if block is None else Arm64Block.from_json(block)
        if row.quantization == "fp16-inference":
            _judge_on_arm64(row, outputs.get(row.name), _threshold(artifact, ctx.config), ctx, summary)
    if summary["note"] and ctx.config.arm64.enabled:  # how to add the column; --no-arm64 asked for silence
        log(summary["note"])
    return summary


def _judge_on_arm64(row: ArtifactRow, arm_out: list[np.ndarray] | None, threshold: Threshold, ctx: _Context,
                    summary: dict) -> None:
    """fp16-inference computes in fp16 only on an ARM CPU with fp16 arithmetic (x86 computes it in fp32): its
    verdict comes from the ARM64 outputs against Keras, on the inputs the ARM64 pass ran."""
    if arm_out is None:
        row.status = "skipped"
        row.reason = (f"{row.path}: fp16 arithmetic happens only on ARM, so this variant is judged on the "
                      f"ARM64 column, which is missing ({summary['note'] or 'the ARM64 build refused it'})")
        return
    n = len(arm_out[0])
    outputs = [OutputFigures.from_json(output_figures(s, arm_out[s.index], ctx.ref_out[s.index][:n],
                                                      None if ctx.labels.get(s.name) is None
                                                      else ctx.labels[s.name][:n]))
               for s in ctx.specs]
    case = GateCase(row.path, row.quantization, threshold, n)
    status, reason = judge(outputs, None, case)
    row.status, row.reason = status, f"on ARM64 ({summary['cpu']}, fp16 arithmetic): {reason}"
    row.statistics = statistics(outputs, case)
    row.arm64.judged_outputs = outputs


def _threshold(artifact, config: BenchConfig) -> Threshold:
    """The artifact's gate row (a NeuralNetwork's: fp16, its precision on the GPU and Neural Engine); one
    chosen by a budgeted `convert` is held to that budget instead."""
    threshold: Threshold = config.thresholds[gate_quantization(artifact)]
    budget = artifact.notes.get("budget") or {}
    if artifact.notes.get("budget_pp") is not None:
        threshold = replace(threshold, max_drop_pp=float(artifact.notes["budget_pp"]))
    if budget.get("min_sqnr_db") is not None:
        threshold = replace(threshold, min_sqnr_db=float(budget["min_sqnr_db"]))
    return threshold


def _user_metrics(ctx: _Context, out: list[np.ndarray], who: str) -> dict[str, MetricEntry] | None:
    if ctx.user_metric is None:
        return None
    values = ctx.user_metric.compute(ctx.data.inputs, ctx.outputs_by_name(out), ctx.labels, who)
    reference = ctx.reference_metrics
    missing = sorted(set(reference) - set(values))
    if missing:
        raise BenchDataError(f"--metric {ctx.user_metric.spec}: returned no {missing[0]!r} on {who} although it did "
                             "on the reference; return the same metrics every time")
    return {k: MetricEntry.from_json(metric_entry(k, values[k], reference[k])) for k in reference}


def _cap_threads(config: BenchConfig) -> tuple[BenchConfig, str | None]:
    """More threads than cores measures contention, not the model: cap, and say so in the report."""
    cores = os.cpu_count() or 1
    over = [t for t in config.threads if t > cores]
    if not over:
        return config, None
    capped = tuple(sorted({min(t, cores) for t in config.threads}))
    return replace(config, threads=capped), (f"asked for {', '.join(map(str, over))} thread(s); this machine has "
                                             f"{cores} cores, so those were measured at {cores}")


def _work(artifact, path, row: ArtifactRow) -> tuple[int | None, float | None]:
    """(MACs per inference from the graph, what the best p50 achieves in GMAC/s)."""
    if artifact.target != "tflite":
        return None, None
    macs = tflite_macs(path)
    best = row.best_p50()
    return macs, round(macs / (best / 1e3) / 1e9, 3) if macs and best > 0 else None


def _coreml_fields(artifact, path: Path) -> dict:
    """The compute units a Core ML artifact can use, and any layer compressed otherwise than its variant says."""
    if artifact.target != "coreml":
        return {"compute_units": None, "compute_units_note": None}
    fields = compute_units(path)
    if artifact.notes.get("compression_fallbacks"):
        fields["compression_fallbacks"] = artifact.notes["compression_fallbacks"]
    return fields


def _search_fields(artifact) -> dict:
    """What a budgeted `convert` decided, for artifacts it chose: budget, float layers and why."""
    notes = artifact.notes
    if notes.get("budget") is None:
        return {}
    b = notes["budget"]
    budget = Budget(b.get("max_drop_pp"), b.get("min_sqnr_db"), tuple((b.get("min_sqnr_by_output") or {}).items()))
    fields = {"search_budget": budget.describe(), "search": notes.get("search", []),
              "float_layers": notes.get("float_layers", []), "float_layer_reason": notes.get("float_layer_reason")}
    if notes.get("budget_pp") is not None:
        fields["budget_pp"] = notes["budget_pp"]
    return fields
