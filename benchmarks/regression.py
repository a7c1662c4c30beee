"""`bench --baseline OLD/report.json`: what got worse since a previous report.

Thresholds are data. Latency and memory are compared only when both reports were measured
on the same CPU: a different machine says nothing about the artifact.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import BenchDataError
from .report import REPORT_SCHEMA_VERSION, best_p50

# An artifact regresses when it loses more accuracy, gets slower, bigger or hungrier than this.
# Memory must grow by both the ratio and the bytes: a few MiB of allocator noise is not a regression.
REGRESSION_LIMITS = {"accuracy_pp": 0.5, "p50_ratio": 1.15, "size_ratio": 1.05,
                     "memory_ratio": 1.25, "memory_min_bytes": 4 * 2**20}


def load_baseline(path: Path) -> dict:
    """Read a previous report.json, refusing another schema version before any slow work."""
    path = Path(path)
    try:
        old = json.loads(path.read_text())
    except FileNotFoundError:
        raise BenchDataError(f"--baseline {path}: no such report") from None
    except OSError as exc:
        raise BenchDataError(f"--baseline {path}: cannot read ({exc.strerror}); give the old report.json file") from None
    except json.JSONDecodeError as exc:
        raise BenchDataError(f"--baseline {path}: not valid JSON ({exc.msg})") from None
    if old.get("schema_version") != REPORT_SCHEMA_VERSION:
        raise BenchDataError(
            f"--baseline {path}: report schema_version {old.get('schema_version')!r}, this mobilepack writes "
            f"{REPORT_SCHEMA_VERSION}; re-run the old bench with this version to compare"
        )
    return old


def check_same_data(path: Path, old: dict, current: dict) -> None:
    a, b = old.get("dataset", {}), current["dataset"]
    if (a.get("name"), a.get("split"), a.get("count")) != (b["name"], b["split"], b["count"]):
        raise BenchDataError(
            f"--baseline {path}: measured on {a.get('name')} ({a.get('split')}, {a.get('count')} inputs), this run on "
            f"{b['name']} ({b['split']}, {b['count']} inputs); compare reports of the same data"
        )


def compare(current: dict, baseline: dict, limits: dict = REGRESSION_LIMITS) -> list[dict]:
    """One entry per artifact present in both reports: the deltas and what regressed."""
    old_rows = {r["name"]: r for r in baseline["artifacts"]}
    same_machine = current["machine"]["cpu"] == baseline["machine"].get("cpu")
    out = []
    for row in current["artifacts"]:
        old = old_rows.get(row["name"])
        if old is None:
            continue
        problems = []
        if row["accuracy"] is not None and old.get("accuracy") is not None:
            lost = (old["accuracy"] - row["accuracy"]) * 100
            if lost > limits["accuracy_pp"]:
                problems.append(f"accuracy {old['accuracy']:.4f} -> {row['accuracy']:.4f} (-{lost:.2f} pp)")
        size_ratio = row["size_bytes"] / old["size_bytes"]
        if size_ratio > limits["size_ratio"]:
            problems.append(f"size {old['size_bytes']} -> {row['size_bytes']} bytes (x{size_ratio:.2f})")
        p_new, p_old = best_p50(row), best_p50(old)
        if same_machine and p_new and p_old and p_new / p_old > limits["p50_ratio"]:
            problems.append(f"p50 {p_old:.3f} -> {p_new:.3f} ms (x{p_new / p_old:.2f})")
        m_new, m_old = (row.get("memory") or {}).get("rss_delta_bytes"), (old.get("memory") or {}).get("rss_delta_bytes")
        if (same_machine and m_new is not None and m_old is not None and m_new > m_old * limits["memory_ratio"]
                and m_new - m_old > limits["memory_min_bytes"]):
            problems.append(f"peak memory {m_old / 2**20:.1f} -> {m_new / 2**20:.1f} MiB above baseline process")
        out.append({"name": row["name"], "regressed": bool(problems), "problems": problems,
                    "latency_compared": same_machine})
    return out
