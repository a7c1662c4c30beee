"""A user's own task metric (`--metric module:function`): user code, run only when the flag names it.

The function receives the inputs (a list of arrays, one per model input), a dict of output arrays by
Keras output name, and a dict of labels by output name (empty without labels), and returns
{metric_name: number}. It is computed for the reference and for every artifact. A metric whose name
starts with `loss` or `error` is lower-is-better; any other is higher-is-better. The drop is how much
worse the artifact is than the reference, in the metric's own units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from train.loading import import_user_module

from benchmarks.errors import BenchDataError, ThresholdError

LOWER_IS_BETTER = ("loss", "error")


@dataclass(frozen=True)
class UserMetric:
    spec: str  # module:function as given
    fn: Callable

    def compute(self, inputs, outputs: dict, labels: dict, who: str) -> dict[str, float]:
        try:
            result = self.fn(list(inputs), dict(outputs), dict(labels))
        except Exception as exc:  # user code may raise anything; name the metric, the artifact and the error
            raise BenchDataError(f"--metric {self.spec}: raised {type(exc).__name__} on {who}: "
                                 f"{_first_line(exc)}; fix the function or run with --debug") from None
        if not isinstance(result, dict) or not result:
            raise BenchDataError(f"--metric {self.spec}: returned {type(result).__name__} on {who}; "
                                 "it must return a non-empty dict {metric_name: number}")
        out = {}
        for name, value in result.items():
            if not isinstance(name, str) or not _is_number(value):
                raise BenchDataError(f"--metric {self.spec}: metric {name!r} on {who} is {value!r}, not a finite "
                                     "number; return {metric_name: float}")
            out[name] = float(value)
        return out


def _is_number(value) -> bool:
    if isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(np.asarray(value).item())) if np.ndim(value) == 0 else False
    except (TypeError, ValueError):
        return False


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "(no message)"


def load_metric(spec: str | None) -> UserMetric | None:
    """Import `module:function`, looking in the current directory first, then installed packages."""
    if not spec:
        return None
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise BenchDataError(f"--metric {spec!r}: expected module:function, e.g. --metric my_metrics:box_iou")
    try:
        module = import_user_module(module_name)
    except Exception as exc:  # ImportError, or anything the module raises while importing
        raise BenchDataError(f"--metric {spec}: cannot import {module_name!r} ({type(exc).__name__}: "
                             f"{_first_line(exc)}); put {module_name}.py in the current directory or install it") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise BenchDataError(f"--metric {spec}: module {module_name!r} has no function {attr!r}")
    return UserMetric(spec, fn)


def direction(name: str) -> str:
    return "lower is better" if name.lower().startswith(LOWER_IS_BETTER) else "higher is better"


def metric_entry(name: str, value: float, reference: float) -> dict:
    lower = direction(name) == "lower is better"
    drop = (value - reference) if lower else (reference - value)
    return {"value": value, "reference": reference, "drop": drop, "direction": direction(name)}


def parse_metric_limits(values) -> dict[str, float]:
    """'iou=0.02' strings -> {metric: max drop}; names are checked once the metric has run."""
    out = {}
    for item in values or ():
        name, sep, num = item.partition("=")
        if not sep or not name:
            raise ThresholdError(f"--max-metric-drop {item!r}: expected NAME=VALUE, e.g. --max-metric-drop box_iou=0.02")
        try:
            out[name] = float(num)
        except ValueError:
            raise ThresholdError(f"--max-metric-drop {item!r}: {num!r} is not a number") from None
        if not out[name] >= 0:
            raise ThresholdError(f"--max-metric-drop {item!r}: the allowed drop must be >= 0")
    return out


def check_metric_limits(limits: dict[str, float], metric: UserMetric | None, reference: dict) -> None:
    if limits and metric is None:
        raise ThresholdError(f"--max-metric-drop {next(iter(limits))}: no --metric given to compute it")
    unknown = sorted(set(limits) - set(reference))
    if unknown:
        raise ThresholdError(f"--max-metric-drop {unknown[0]}: --metric {metric.spec} returns no such metric; "
                             f"it returns {', '.join(sorted(reference))}")
