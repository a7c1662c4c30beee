"""`mobilepack bench`: every artifact against the Keras reference, then the gate."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from convert.manifest import load_manifest, verify_artifacts
from train.loading import load_keras_model, sha256_file

from . import metrics
from .errors import BenchDataError, ThresholdError
from .evaldata import EvalData, load_eval_data
from .gate import DEFAULT_THRESHOLDS, Threshold, judge
from .crosscheck import AGREEMENT_LIMIT, GOOGLE_TOOL, crosscheck
from .latency import LatencyProtocol, runner_latency
from .machine import machine_info
from .macs import tflite_macs
from .measure import FreshProcessMeter
from .recommend import recommend
from .regression import REGRESSION_LIMITS, check_same_data, compare, load_baseline
from .report import REPORT_SCHEMA_VERSION, best_p50, write_report
from .runners import KerasRunner, artifact_runner, predict_batched

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

    def __post_init__(self):
        bad = [t for t in self.threads if t < 1]
        if bad or not self.threads:
            raise ThresholdError(f"--threads {bad[0] if bad else ''}: thread counts must be whole numbers >= 1, e.g. --threads 1,2")
        if self.batch_size < 1:
            raise ThresholdError(f"--batch-size must be >= 1, got {self.batch_size}")


def run_bench(dist: Path, config: BenchConfig, log: Callable[[str], None] = print,
              progress: Progress | None = None) -> dict:
    """Evaluate every artifact in `dist`'s manifest; write report.json/.md into `dist`."""
    dist = Path(dist)
    config, threads_note = _cap_threads(config)
    baseline = load_baseline(config.baseline) if config.baseline else None
    manifest = load_manifest(dist)
    verify_artifacts(manifest, dist)
    ref_path = dist / manifest.source["model_file"]
    if not ref_path.is_file() or sha256_file(ref_path) != manifest.source["model_sha256"]:
        raise BenchDataError(f"{ref_path}: reference model missing or altered; re-run `mobilepack convert`")
    model = load_keras_model(ref_path, unsafe=config.unsafe_load)
    names = [t.name for t in model.inputs]
    data = load_eval_data(config.data, manifest, dist, [tuple(t.shape)[1:] for t in model.inputs], names, log)
    log(f"evaluating on {data.count} inputs from {data.name} ({data.split} split)")

    keras_runner = KerasRunner(model)
    ref_out = predict_batched(keras_runner, list(data.inputs), config.batch_size, progress, "reference")
    ref_pred = metrics.top1(ref_out[0])
    reference = {
        "runtime": keras_runner.runtime,
        "accuracy": metrics.accuracy(ref_pred, data.labels) if data.labels is not None else None,
        "latency_ms": runner_latency(keras_runner, list(data.inputs), config.latency).to_dict(),
    }
    preds: dict[str, np.ndarray] = {}
    with FreshProcessMeter(list(data.inputs), config.latency, names) as meter:
        rows = []
        for a in manifest.artifacts:
            row, preds[a.name] = _artifact_row(a, dist, data, ref_out, ref_pred, reference, config, names, progress,
                                               meter)
            rows.append(row)
    failed = [r["name"] for r in rows if r["status"] == "failed"]
    recommended = recommend(rows)
    report = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "dataset": {"name": data.name, "split": data.split, "count": data.count, "has_labels": data.labels is not None},
        "manifest": {"path": "manifest.json", "source_model_sha256": manifest.source["model_sha256"]},
        "reference": reference,
        "thresholds": {q: vars(t) for q, t in config.thresholds.items()},
        "threads": {"measured": list(config.threads), "note": threads_note},
        "gate": {"enabled": config.gate, "verdict": ("failed" if failed else "passed") if config.gate else "not gated",
                 "failed": failed},
        "recommended": recommended,
        "crosscheck": {"enabled": config.crosscheck, "tool": GOOGLE_TOOL, "limit": AGREEMENT_LIMIT,
                       "disagreements": [r["name"] for r in rows if not all(c["agrees"] for c in r["crosscheck"])]},
        "artifacts": rows,
        "worst": worst_artifact(rows, preds, ref_pred, data, manifest.labels),
    }
    if baseline is not None:
        check_same_data(config.baseline, baseline, report)
        comparisons = compare(report, baseline)
        report["baseline"] = {"path": str(config.baseline), "limits": REGRESSION_LIMITS, "comparisons": comparisons,
                              "regressed": [c["name"] for c in comparisons if c["regressed"]]}
    write_report(report, dist, data.images)
    return report


EVALUATOR_NOTE = ("timed through mobilepack's numpy Core ML reference evaluator on this host: "
                  "it checks numerics, it is not device latency")


def _artifact_row(artifact, dist: Path, data: EvalData, ref_out, ref_pred, reference, config: BenchConfig,
                  input_names, progress, meter: FreshProcessMeter) -> tuple[dict, np.ndarray]:
    path = artifact.path(dist)
    runner = artifact_runner(path, artifact.target, num_threads=max(config.threads), input_names=input_names)
    out = predict_batched(runner, list(data.inputs), config.batch_size, progress, artifact.name)
    pred = metrics.top1(out[0])
    flat, ref_flat = np.concatenate([o.ravel() for o in out]), np.concatenate([o.ravel() for o in ref_out])
    acc = metrics.accuracy(pred, data.labels) if data.labels is not None else None
    row = {
        "name": artifact.name, "target": artifact.target, "format": artifact.format,
        "quantization": artifact.quantization, "path": artifact.file, "size_bytes": artifact.size_bytes,
        "sha256": artifact.sha256, "runtime": runner.runtime,
        "accuracy": acc,
        "accuracy_drop_pp": (reference["accuracy"] - acc) * 100.0 if acc is not None else None,
        "agreement": metrics.agreement(pred, ref_pred),
        "max_abs_error": metrics.max_abs_error(flat, ref_flat),
        "sqnr_db": metrics.finite_or_none(metrics.sqnr_db(flat, ref_flat)),
        **_latency(artifact, path, runner.runtime, config, progress, meter),
        **_search_fields(artifact),
    }
    row.update(_work(artifact, path, row))
    threshold: Threshold = config.thresholds[artifact.quantization]
    if artifact.notes.get("budget_pp") is not None:  # chosen by `convert --max-drop`: its budget is its limit
        threshold = replace(threshold, max_drop_pp=float(artifact.notes["budget_pp"]))
    status, reason = judge(row, threshold, data.count)
    row["status"], row["reason"] = status, reason
    return row, pred


MAX_MISSES = 24  # inputs listed (and shown as thumbnails in report.html) for the worst artifact


def worst_artifact(rows: list[dict], preds: dict, ref_pred: np.ndarray, data: EvalData, labels: list | None) -> dict | None:
    """The artifact that lost most (accuracy drop, else disagreement): per-class change and the inputs it misses.

    With labels, the misses are the inputs it gets wrong, those the reference got right first (what
    quantization broke before what was always hard); without labels, the inputs where it disagrees
    with the reference.
    """
    if not rows:
        return None
    key = (lambda r: (r["accuracy_drop_pp"], -r["agreement"])) if data.labels is not None else (lambda r: -r["agreement"])
    row = max(rows, key=key)
    pred = preds[row["name"]]
    name_of = (lambda i: labels[i] if labels and 0 <= i < len(labels) else str(i))
    per_class = []
    if data.labels is not None:
        for c in np.unique(data.labels):
            mask = data.labels == c
            ref_acc, acc = float(np.mean(ref_pred[mask] == c)), float(np.mean(pred[mask] == c))
            per_class.append({"class": int(c), "label": name_of(int(c)), "count": int(mask.sum()),
                              "reference_accuracy": ref_acc, "accuracy": acc, "change_pp": (acc - ref_acc) * 100})
        wrong = pred != data.labels
        broke = wrong & (ref_pred == data.labels)
        missed = np.concatenate([np.flatnonzero(broke), np.flatnonzero(wrong & ~broke)])
        newly = int(broke.sum())
    else:
        missed = np.flatnonzero(pred != ref_pred)
        newly = int(len(missed))
    misses = [{"index": int(i), "label": None if data.labels is None else name_of(int(data.labels[i])),
               "predicted": name_of(int(pred[i])), "reference": name_of(int(ref_pred[i]))} for i in missed[:MAX_MISSES]]
    return {"name": row["name"], "accuracy_drop_pp": row["accuracy_drop_pp"], "agreement": row["agreement"],
            "per_class": per_class, "missed_count": int(len(missed)), "newly_missed_count": newly, "misses": misses}


def _cap_threads(config: BenchConfig) -> tuple[BenchConfig, str | None]:
    """More threads than cores measures contention, not the model: cap, and say so in the report."""
    cores = os.cpu_count() or 1
    over = [t for t in config.threads if t > cores]
    if not over:
        return config, None
    capped = tuple(sorted({min(t, cores) for t in config.threads}))
    return replace(config, threads=capped), (f"asked for {', '.join(map(str, over))} thread(s); this machine has "
                                             f"{cores} cores, so those were measured at {cores}")


def _work(artifact, path, row: dict) -> dict:
    """MACs per inference from the graph, and what the best p50 achieves."""
    if artifact.target != "tflite":
        return {"macs": None, "gmacs_per_s": None}
    macs = tflite_macs(path)
    best = best_p50(row)
    return {"macs": macs, "gmacs_per_s": round(macs / (best / 1e3) / 1e9, 3) if macs and best > 0 else None}


def _search_fields(artifact) -> dict:
    """What `convert --max-drop` decided, for artifacts it chose: budget, float layers and why."""
    notes = artifact.notes
    if notes.get("budget_pp") is None:
        return {}
    return {"budget_pp": notes["budget_pp"], "search": notes.get("search", []),
            "float_layers": notes.get("float_layers", []), "float_layer_reason": notes.get("float_layer_reason")}


def _latency(artifact, path, runtime: str, config: BenchConfig, progress, meter: FreshProcessMeter) -> dict:
    """LiteRT at each thread count, Core ML once, each in a fresh process; memory from the fewest threads."""
    def step(label: str, done: int) -> None:
        if progress:
            progress(f"{artifact.name} {label}", done, 1)

    if artifact.target == "tflite":
        stats, checks = [], []
        for t in config.threads:
            step(f"latency @{t}t", 0)
            stats.append(meter.measure("litert", path, t))
            step(f"latency @{t}t", 1)
            if config.crosscheck:
                step(f"google tool @{t}t", 0)
                checks.append(crosscheck(path, stats[-1]))
                step(f"google tool @{t}t", 1)
        return {"latency_ms": stats, "latency_note": None, "memory": stats[0]["memory"], "crosscheck": checks}
    # The evaluator is slow on big models; a few runs give its median without dominating the bench.
    protocol = LatencyProtocol(min_runs=max(5, config.latency.min_runs // 5), min_seconds=0.0, warmup_runs=1,
                               warmup_seconds=0.0)
    step("latency", 0)
    stats = meter.measure("coreml", path, None, protocol)
    step("latency", 1)
    note = EVALUATOR_NOTE if runtime == "coreml-reference" else "timed through Core ML on this Mac"
    return {"latency_ms": [stats], "latency_note": note, "memory": stats["memory"], "crosscheck": []}
