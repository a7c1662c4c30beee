"""The accuracy budget of a conversion: what `--max-drop PP` and `--min-sqnr DB` hold each candidate to.

A leaf: the search (convert/search.py), the config, the bench's recommendation and the judge all
read it, and it imports nothing of convert but its errors. Judging needs a runtime, which convert
does not import: the caller passes a `Judge`, `judge(path, target) -> per-output figures` (dicts
with name, kind, accuracy_drop_pp or None, sqnr_db).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from train.errors import MobilepackError

from convert.errors import UsageError

Judge = Callable[[Path, str], list]


class BudgetNotMetError(MobilepackError):
    """No candidate of a family stays within the accuracy budget."""

    exit_code = 1


@dataclass(frozen=True)
class Budget:
    max_drop_pp: float | None = None  # labelled classification outputs: accuracy drop, percentage points
    min_sqnr_db: float | None = None  # every other output (or one without labels): SQNR floor
    min_sqnr_by_output: tuple[tuple[str, float], ...] = ()  # per-output floors, over the global one

    def sqnr_floor(self, output: str) -> float | None:
        return dict(self.min_sqnr_by_output).get(output, self.min_sqnr_db)

    def describe(self) -> str:
        parts = [f"{self.max_drop_pp:g} pp"] if self.max_drop_pp is not None else []
        if self.min_sqnr_db is not None:
            parts.append(f"SQNR >= {self.min_sqnr_db:g} dB")
        parts += [f"'{n}' SQNR >= {v:g} dB" for n, v in self.min_sqnr_by_output]
        return ", ".join(parts) or "no budget"

    def check(self, outputs: list[dict]) -> tuple[bool, str]:
        """(within, what was compared) for per-output figures; an output with no limit is not held."""
        within, said = True, []
        named = len(outputs) > 1
        for o in outputs:
            prefix = f"'{o['name']}' " if named else ""
            drop = o.get("accuracy_drop_pp") if o["kind"] == "classification" else None
            floor = self.sqnr_floor(o["name"])
            if drop is not None and self.max_drop_pp is not None:
                ok = drop <= self.max_drop_pp + 1e-9
                said.append(f"{prefix}drop {drop:.2f} pp {'<=' if ok else '>'} {self.max_drop_pp:g} pp")
            elif floor is not None:
                sqnr = o.get("sqnr_db")  # None: identical to the reference
                ok = sqnr is None or sqnr >= floor
                shown = "exact" if sqnr is None else f"SQNR {sqnr:.1f} dB"
                said.append(f"{prefix}{shown} {'>=' if ok else '<'} {floor:g} dB")
            else:
                continue
            within = within and ok
        return within, "; ".join(said) or "no output held to a budget"

    def to_dict(self) -> dict:
        return {"max_drop_pp": self.max_drop_pp, "min_sqnr_db": self.min_sqnr_db,
                "min_sqnr_by_output": dict(self.min_sqnr_by_output)}


def parse_min_sqnr(values) -> tuple[float | None, tuple[tuple[str, float], ...]]:
    """--min-sqnr DB (every output) and/or NAME=DB (one output) -> (global floor, per-output floors)."""
    glob, per = None, []
    for item in values or ():
        name, sep, num = item.rpartition("=") if "=" in item else ("", "", item)
        try:
            value = float(num)
        except ValueError:
            raise UsageError(f"--min-sqnr {item!r}: expected DB or OUTPUT=DB, e.g. --min-sqnr 30 or "
                             "--min-sqnr box=30") from None
        if sep and not name:
            raise UsageError(f"--min-sqnr {item!r}: the output name is empty; e.g. --min-sqnr box=30")
        if sep:
            per.append((name, value))
        else:
            glob = value
    return glob, tuple(per)
