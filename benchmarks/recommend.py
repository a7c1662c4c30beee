"""One recommended artifact per platform: within its gate, then smallest, then fastest."""

from __future__ import annotations

from .report import PLATFORMS, best_p50


def recommend(rows: list[dict]) -> dict[str, str | None]:
    """Mark rows with `recommended` and `recommendation_reason`; return {platform: name or None}."""
    chosen: dict[str, str | None] = {}
    for platform, target in PLATFORMS.items():
        family = [r for r in rows if r["target"] == target]
        passing = sorted((r for r in family if r["status"] == "passed"), key=lambda r: (r["size_bytes"], _fastest(r)))
        best = passing[0] if passing else None
        chosen[platform] = best["name"] if best else None
        for r in family:
            r["recommended"] = r is best
            r["recommendation_reason"] = _reason(r, best, platform, len(passing), len(family))
    for r in rows:
        r.setdefault("recommended", False)
        r.setdefault("recommendation_reason", "no platform takes this target")
    return chosen


def _fastest(row: dict) -> float:
    p50 = best_p50(row)
    return float("inf") if p50 is None else p50


def _reason(row: dict, best: dict | None, platform: str, n_pass: int, n_all: int) -> str:
    if best is None:
        return f"none of the {n_all} {platform} artifacts passed its gate, so none is recommended"
    if row is best:
        drop = row["accuracy_drop_pp"]
        within = f"drop {drop:.2f} pp" if drop is not None else f"agreement {row['agreement']:.3f}"
        return (f"smallest {platform} artifact within its gate ({row['size_bytes'] / 1024:.1f} KiB, {within}); "
                f"{n_pass} of {n_all} passed")
    if row["status"] != "passed":
        return f"failed its gate: {row['reason']}"
    return f"passed, but {row['size_bytes'] / 1024:.1f} KiB is larger than {best['name']} ({best['size_bytes'] / 1024:.1f} KiB)"
