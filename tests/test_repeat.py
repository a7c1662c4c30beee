"""Latency over repetitions: pooling, intervals, instability, and a baseline test that neither cries wolf nor sleeps."""

import numpy as np
import pytest

from benchmarks.bench import BenchConfig
from benchmarks.errors import ThresholdError
from benchmarks.latency.repeat import UNSTABLE_SPREAD, combine, slower_than
from cli_helpers import assert_one_line_error, run


def process(rng, centre: float, within: float = 0.05, runs: int = 400) -> dict:
    """One measuring process's stats, as benchmarks.latency.protocol writes them, from lognormal run times."""
    ms = centre * rng.lognormal(0, within, runs)
    return {"threads": 1, "init": 1.0, "first": 2.0, "warmup_runs": 5, "runs": runs, "mean": float(ms.mean()),
            "std": float(ms.std()), "min": float(ms.min()), "max": float(ms.max()), "p50": float(np.median(ms)),
            "samples": [float(v) for v in np.percentile(ms, np.arange(101))], "pid": 1, "started": 0.0,
            "cpu_p50": None, "memory": {"peak_rss_bytes": 10, "rss_delta_bytes": 5}}


def repetitions(rng, centre: float, between: float, n: int = 3) -> list[dict]:
    """n processes whose own centres scatter by `between` (lognormal sd): the noise between processes."""
    return [process(rng, centre * rng.lognormal(0, between)) for _ in range(n)]


def test_combine_pools_the_repetitions_and_flags_disagreement():
    rng = np.random.default_rng(0)
    steady = combine([process(rng, 1.0) for _ in range(3)])
    assert steady["p50"] == pytest.approx(1.0, rel=0.02) and not steady["unstable"]
    assert steady["p50_interval"][0] <= steady["p50"] <= steady["p50_interval"][1]
    assert steady["runs"] == 1200 and len(steady["repetitions"]) == 3 and len(steady["quantiles"]) == 21
    shaky = combine([process(rng, 1.0), process(rng, 1.3), process(rng, 1.0)])
    assert shaky["spread"] > UNSTABLE_SPREAD and shaky["unstable"]
    # Two processes that disagree make a wider interval than three that agree.
    assert np.diff(shaky["p50_interval"]) > 3 * np.diff(steady["p50_interval"])
    assert not combine([process(rng, 1.0)])["unstable"]  # one repetition cannot disagree with itself


def test_identical_runs_are_not_regressions_and_real_slowdowns_are():
    """Process-to-process noise of 8% (what a 2-core host shows on sub-ms models): the test must not cry wolf
    when nothing changed, and must catch a 1.5x slowdown."""
    rng = np.random.default_rng(1)
    trials = 200
    false = sum(slower_than(repetitions(rng, 1.0, 0.08), repetitions(rng, 1.0, 0.08), 1.15)["regressed"]
                for _ in range(trials))
    caught = sum(slower_than(repetitions(rng, 1.0, 0.08), repetitions(rng, 1.5, 0.08), 1.15)["regressed"]
                 for _ in range(trials))
    assert false / trials <= 0.01, false
    assert caught / trials >= 0.9, caught


def test_a_point_ratio_over_the_limit_is_not_enough():
    rng = np.random.default_rng(2)
    old = [process(rng, c) for c in (1.0, 1.25, 0.95)]
    new = [process(rng, c) for c in (1.22, 0.98, 1.45)]
    result = slower_than(old, new, 1.15)
    assert result["ratio"] > 1.15 and not result["regressed"] and result["ratio_lower_95"] < 1.15


@pytest.mark.bad_input("cli")
def test_repeat_must_be_a_positive_whole_number(tiny_dist):
    with pytest.raises(ThresholdError, match="--repeat 0"):
        BenchConfig(repeat=0)
    assert_one_line_error(run("bench", tiny_dist, "--repeat", "0"), 2, "'--repeat': 0 is not in the range")
    assert_one_line_error(run("bench", tiny_dist, "--repeat", "three"), 2, "'three' is not a valid integer")
