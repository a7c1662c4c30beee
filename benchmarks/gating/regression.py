"""`bench --baseline OLD/report.json`: what got worse since a previous report.

Thresholds are data. Latency and memory are compared only when both reports were measured
on the same CPU: a different machine says nothing about the artifact. They are noisy, so a
slowdown counts only when it is larger than the limit with 95% confidence, judged on the
stored repetitions (benchmarks/latency/repeat.py), and more memory only when every new repetition
used more than every old one; otherwise the comparison says "within noise". Accuracy and
size are deterministic and compared as they are. Core ML reference-evaluator timings are a
numerics check, never gated as latency. A baseline of an older schema (without repetitions)
is refused, so no comparison is ever made without its samples.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.errors import BaselineError, BenchDataError
from benchmarks.latency.repeat import slower_than
from benchmarks.report.write import load_report
from benchmarks.row import ArtifactRow, Report

# An artifact regresses when it loses more accuracy, gets slower, bigger or hungrier than this.
# Memory must grow by both the ratio and the bytes: a few MiB of allocator noise is not a regression.
REGRESSION_LIMITS = {"accuracy_pp": 0.5, "p50_ratio": 1.15, "size_ratio": 1.05,
                     "memory_ratio": 1.25, "memory_min_bytes": 4 * 2**20}


def load_baseline(path: Path) -> Report:
    """Read a previous report.json, refusing another schema version or a damaged file before any slow work."""
    fix = "give a report.json that `mobilepack bench` wrote (re-run the old bench with this version to compare)"
    try:
        return load_report(Path(path), fix, BaselineError)
    except BaselineError as exc:
        raise BaselineError(f"--baseline {exc}") from None


def check_same_data(path: Path, old: Report, current: Report) -> None:
    a, b = old.dataset, current.dataset
    if (a.get("name"), a.get("split"), a.get("count")) != (b["name"], b["split"], b["count"]):
        raise BenchDataError(
            f"--baseline {path}: measured on {a.get('name')} ({a.get('split')}, {a.get('count')} inputs), this run on "
            f"{b['name']} ({b['split']}, {b['count']} inputs); compare reports of the same data"
        )


def compare(current: Report, baseline: Report, limits: dict = REGRESSION_LIMITS) -> list[dict]:
    """One entry per artifact present in both reports: the deltas and what regressed."""
    same_machine = current.machine["cpu"] == baseline.machine.get("cpu")
    out = []
    for row in current.artifacts:
        old = baseline.row(row.name)
        if old is None:
            continue
        problems = []
        if row.accuracy is not None and old.accuracy is not None:
            lost = (old.accuracy - row.accuracy) * 100
            if lost > limits["accuracy_pp"]:
                problems.append(f"accuracy {old.accuracy:.4f} -> {row.accuracy:.4f} (-{lost:.2f} pp)")
        size_ratio = row.size_bytes / old.size_bytes
        if size_ratio > limits["size_ratio"]:
            problems.append(f"size {old.size_bytes} -> {row.size_bytes} bytes (x{size_ratio:.2f})")
        notes = []
        compared = same_machine and row.runtime != "coreml-reference"
        if compared:
            _latency_problems(row, old, limits, problems, notes)
            _memory_problem(row, old, limits, problems, notes)
        out.append({"name": row.name, "regressed": bool(problems), "problems": problems, "within_noise": notes,
                    "latency_compared": compared})
    return out


def _latency_problems(row: ArtifactRow, old: ArtifactRow, limits: dict, problems: list, notes: list) -> None:
    """A slowdown past the limit with 95% confidence, per thread count; a larger point ratio alone is noise."""
    old_by_threads = {s.threads: s for s in old.latency_ms or []}
    for new in row.latency_ms or []:
        prev = old_by_threads.get(new.threads)
        if prev is None:
            continue
        test = slower_than(prev.repetitions, new.repetitions, limits["p50_ratio"])
        where = f"@{new.threads}t " if new.threads else ""
        text = (f"p50 {where}{prev.p50:.3f} -> {new.p50:.3f} ms (x{test['ratio']:.2f}, "
                f"95% lower bound x{test['ratio_lower_95']:.2f})")
        if test["regressed"]:
            problems.append(text)
        elif test["ratio"] > limits["p50_ratio"]:
            notes.append(f"{text}: within noise, not past x{limits['p50_ratio']:.2f} with 95% confidence")


def _memory_problem(row: ArtifactRow, old: ArtifactRow, limits: dict, problems: list, notes: list) -> None:
    """More peak memory by the ratio and the bytes, and in every repetition: allocator noise is not a regression."""
    m_new = row.memory.rss_delta_bytes if row.memory else None
    m_old = old.memory.rss_delta_bytes if old.memory else None
    if m_new is None or m_old is None:
        return
    if m_new > m_old * limits["memory_ratio"] and m_new - m_old > limits["memory_min_bytes"]:
        text = f"peak memory {m_old / 2**20:.1f} -> {m_new / 2**20:.1f} MiB above baseline process"
        new_all, old_all = _rss_deltas(row), _rss_deltas(old)
        if new_all and old_all and min(new_all) <= max(old_all):
            notes.append(f"{text}: within noise (the repetitions overlap)")
        else:
            problems.append(text)


def _rss_deltas(row: ArtifactRow) -> list[int]:
    return row.latency_ms[0].rss_deltas() if row.latency_ms else []
