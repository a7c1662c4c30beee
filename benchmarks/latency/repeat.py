"""Latency over repeated fresh processes: one entry per artifact and thread count, with honest spread.

The unit of replication is the process: what moves a p50 from run to run on a noisy host is mostly
what differs between processes (where the allocator put the weights, which core the scheduler chose,
what the neighbours were doing), not the runs inside one process. So:

- p50 is the median over every timed run of every repetition (each repetition's 101 stored quantiles
  stand for its runs, weighted by its run count);
- its 95% interval is a two-level bootstrap: resample the repetitions, then the runs within each
  (from their quantiles), 2,000 times, and take the 2.5th and 97.5th percentiles of the median. With
  one repetition it only reflects the runs of one process, and the report says so;
- `spread` is (largest - smallest repetition p50) / p50; above UNSTABLE_SPREAD the row is `unstable`.

A baseline comparison asks whether the new p50 is slower than the old by more than the limit with
95% confidence: the one-sided lower bound of the bootstrap ratio new/old must exceed the limit, not
just the point estimate.
"""

from __future__ import annotations

import numpy as np

UNSTABLE_SPREAD = 0.10  # repetitions whose p50s differ by more than 10% of the median disagree
BOOTSTRAP_RESAMPLES = 2000
SAMPLE_QUANTILES = np.linspace(0, 100, 101)  # what each repetition stores of its timed runs


def combine(reps: list[dict]) -> dict:
    """One latency entry from its repetitions (each a single process's stats with `samples`)."""
    first = reps[0]
    pooled = _pooled(reps)
    runs = np.array([r["runs"] for r in reps], float)
    means = np.array([r["mean"] for r in reps])
    mean = float(np.average(means, weights=runs))
    std = float(np.sqrt(np.average(np.array([r["std"] for r in reps]) ** 2 + (means - mean) ** 2, weights=runs)))
    p50s = [r["p50"] for r in reps]
    p50 = float(np.median(pooled))
    lo, hi = median_interval(reps)
    spread = (max(p50s) - min(p50s)) / p50 if p50 > 0 else 0.0
    entry = {
        "threads": first["threads"], "init": float(np.median([r["init"] for r in reps])),
        "first": float(np.median([r["first"] for r in reps])), "warmup_runs": int(first["warmup_runs"]),
        "runs": int(runs.sum()), "mean": mean, "std": std, "min": float(min(r["min"] for r in reps)),
        "max": float(max(r["max"] for r in reps)), "p5": _pct(pooled, 5), "p50": p50, "p90": _pct(pooled, 90),
        "p95": _pct(pooled, 95), "p99": _pct(pooled, 99),
        "quantiles": [float(q) for q in np.percentile(pooled, np.arange(0, 101, 5))],
        "cpu_p50": _median_or_none([r.get("cpu_p50") for r in reps]),
        "p50_interval": [lo, hi], "spread": float(spread),
        "unstable": len(reps) > 1 and spread > UNSTABLE_SPREAD,
        "repetitions": [_repetition(r) for r in reps],
    }
    if "memory" in first:
        entry["memory"] = _median_memory([r["memory"] for r in reps])
    entry["pid"] = first.get("pid")
    return entry


def _repetition(r: dict) -> dict:
    """What report.json keeps of one process: enough to pool, test and plot it again."""
    kept = {k: r.get(k) for k in ("p50", "mean", "std", "runs", "pid", "started", "cpus", "cpu_p50", "samples")}
    kept["rss_delta_bytes"] = (r.get("memory") or {}).get("rss_delta_bytes")
    return kept


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q))


def _median_or_none(values: list) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.median(present)) if present else None


def _median_memory(mems: list[dict]) -> dict:
    """The repetition of median peak RSS stands for all (memory varies little; one number per field)."""
    return sorted(mems, key=lambda m: m["peak_rss_bytes"])[len(mems) // 2]


def _pooled(reps: list[dict]) -> np.ndarray:
    """Every repetition's quantile samples, each repeated in proportion to its run count."""
    weights = np.array([r["runs"] for r in reps], float)
    weights = np.maximum(1, np.round(weights / weights.min())).astype(int)
    return np.concatenate([np.repeat(np.asarray(r["samples"], float), w) for r, w in zip(reps, weights)])


def _bootstrap_medians(reps: list[dict], rng: np.random.Generator, n: int = BOOTSTRAP_RESAMPLES) -> np.ndarray:
    """Medians of two-level resamples: repetitions with replacement, then samples within each."""
    samples = np.array([np.asarray(r["samples"], float) for r in reps])  # (reps, 101)
    k, m = samples.shape
    pick_rep = rng.integers(0, k, (n, k))
    pick_run = rng.integers(0, m, (n, k, m))
    resampled = samples[pick_rep[:, :, None], pick_run]  # (n, k, m)
    return np.median(resampled.reshape(n, -1), axis=1)


def median_interval(reps: list[dict], seed: int = 0) -> tuple[float, float]:
    meds = _bootstrap_medians(reps, np.random.default_rng(seed))
    return float(np.percentile(meds, 2.5)), float(np.percentile(meds, 97.5))


def slower_than(old_reps: list[dict], new_reps: list[dict], limit: float, seed: int = 0) -> dict:
    """Is new slower than old by more than `limit` (e.g. 1.15) with 95% confidence?"""
    rng = np.random.default_rng(seed)
    ratios = _bootstrap_medians(new_reps, rng) / _bootstrap_medians(old_reps, rng)
    lower = float(np.percentile(ratios, 5))  # one-sided 95% lower bound
    point = float(np.median(_pooled(new_reps)) / np.median(_pooled(old_reps)))
    return {"ratio": point, "ratio_lower_95": lower, "regressed": lower > limit,
            "significant": lower > 1.0}
