"""One recommended artifact per platform: passed its gate and within the budget, then smallest, then fastest.

A gate row is a floor per quantization (pal4 may lose 3 pp); the budget (`--max-drop`, default 1 pp,
or `--min-sqnr` for outputs without labels) is what the user will accept from whatever ships, so a
loose row cannot pick an artifact that loses more than the user would.
"""

from __future__ import annotations

from convert.budget import Budget
from convert.manifest import PLATFORM_TARGET

from .summary import best_p50


def recommend(rows: list[dict], budget: Budget) -> dict[str, str | None]:
    """Mark rows with `within_budget`, `recommended` and `recommendation_reason`; return {platform: name or None}."""
    for r in rows:
        r["within_budget"], r["budget_check"] = budget.check(r["outputs"])
    chosen: dict[str, str | None] = {}
    for platform, target in PLATFORM_TARGET.items():
        family = [r for r in rows if r["target"] == target]
        eligible = [r for r in family if r["status"] == "passed" and r["within_budget"]]
        eligible.sort(key=lambda r: (r["size_bytes"], _fastest(r)))
        best = eligible[0] if eligible else None
        chosen[platform] = best["name"] if best else None
        for r in family:
            r["recommended"] = r is best
            r["recommendation_reason"] = _reason(r, best, platform, len(eligible), len(family), budget)
    for r in rows:
        r.setdefault("recommended", False)
        r.setdefault("recommendation_reason", "no platform takes this target")
    return chosen


def _fastest(row: dict) -> float:
    p50 = best_p50(row)
    return float("inf") if p50 is None else p50


def _reason(row: dict, best: dict | None, platform: str, n_ok: int, n_all: int, budget: Budget) -> str:
    if best is None:
        return (f"none of the {n_all} {platform} artifacts passed its gate within the budget "
                f"({budget.describe()}), so none is recommended")
    if row is best:
        return (f"smallest {platform} artifact that passed its gate within the budget ({row['size_bytes'] / 1024:.1f} "
                f"KiB, {row['budget_check']}); {n_ok} of {n_all} qualify")
    if row["status"] != "passed":
        return f"failed its gate: {row['reason']}"
    if not row["within_budget"]:
        return f"passed its gate but is outside the budget: {row['budget_check']}"
    return f"passed, but {row['size_bytes'] / 1024:.1f} KiB is larger than {best['name']} ({best['size_bytes'] / 1024:.1f} KiB)"
