"""One recommended artifact per platform: passed its gate and within the budget, then smallest, then fastest.

A gate row is a floor per quantization (pal4 may lose 3 pp); the budget (`--max-drop`, default 1 pp,
or `--min-sqnr` for outputs without labels) is what the user will accept from whatever ships, so a
loose row cannot pick an artifact that loses more than the user would. For iOS, by default, an
artifact that can use the Neural Engine comes before a smaller one that cannot: the Neural Engine is
the fast, low-power unit a phone has for these models (see compute_units.py for how it is judged).
"""

from __future__ import annotations

from convert.budget import Budget
from convert.manifest import PLATFORM_TARGET

from benchmarks.row import ArtifactRow


def recommend(rows: list[ArtifactRow], budget: Budget, prefer_neural_engine: bool = True) -> dict[str, str | None]:
    """Set each row's `within_budget`, `budget_check`, `recommended` and `recommendation_reason`; return
    {platform: name or None}."""
    for r in rows:
        r.within_budget, r.budget_check = budget.check(r.output_dicts())
        r.recommended, r.recommendation_reason = False, "no platform takes this target"
    chosen: dict[str, str | None] = {}
    for platform, target in PLATFORM_TARGET.items():
        family = [r for r in rows if r.target == target]
        eligible = [r for r in family if r.status == "passed" and r.within_budget]
        ane = prefer_neural_engine and platform == "ios"
        eligible.sort(key=lambda r: (ane and not r.can_use_neural_engine(), r.size_bytes, _fastest(r)))
        best = eligible[0] if eligible else None
        chosen[platform] = best.name if best else None
        for r in family:
            r.recommended = r is best
            r.recommendation_reason = _reason(r, best, platform, (len(eligible), len(family)), budget, ane)
    return chosen


def _fastest(row: ArtifactRow) -> float:
    p50 = row.best_p50()
    return float("inf") if p50 is None else p50


def _reason(row: ArtifactRow, best: ArtifactRow | None, platform: str, counts: tuple[int, int], budget: Budget,
            ane: bool) -> str:
    n_ok, n_all = counts
    if best is None:
        return (f"none of the {n_all} {platform} artifacts passed its gate within the budget "
                f"({budget.describe()}), so none is recommended")
    if row is best:
        ne = ane and row.can_use_neural_engine()
        return (f"smallest {platform} artifact{' that can use the Neural Engine' if ne else ''} that passed its gate "
                f"within the budget ({row.size_bytes / 1024:.1f} KiB, {row.budget_check}); {n_ok} of {n_all} "
                f"qualify" + (", none of them can use the Neural Engine" if ane and not ne else ""))
    if row.status != "passed":
        return f"failed its gate: {row.reason}"
    if not row.within_budget:
        return f"passed its gate but is outside the budget: {row.budget_check}"
    if ane and best.can_use_neural_engine() and not row.can_use_neural_engine():
        return (f"passed, but its compute units are {row.compute_units}, no Neural Engine; {best.name} can "
                "use the Neural Engine, which the iOS recommendation prefers")
    return f"passed, but {row.size_bytes / 1024:.1f} KiB is larger than {best.name} ({best.size_bytes / 1024:.1f} KiB)"
