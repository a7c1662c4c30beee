"""Honest statistics: intervals checked against SciPy and by simulated coverage; the budget-bound recommendation."""

import numpy as np
import pytest
from scipy.stats import binomtest

from benchmarks.gating.recommend import recommend
from benchmarks.parity.stats import paired_difference, resolution_notes, wilson
from convert.budget import Budget
from row_helpers import figures, make_row


@pytest.mark.parametrize("k, n", [(0, 10), (3, 10), (355, 359), (359, 359), (50, 100)])
def test_wilson_matches_scipy(k, n):
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_paired_interval_covers_the_true_drop_95_percent_of_the_time():
    """Simulated paired outcomes with a known drop: Newcombe's interval must hold it about 95% of the time."""
    rng = np.random.default_rng(0)
    n, trials, covered, widths = 359, 2000, 0, []
    # Reference right 97%; the artifact breaks 2% of those and fixes 0.5% of the rest: true drop 1.925 pp.
    p_ref, p_break, p_fix = 0.97, 0.02, 0.005
    true_drop = p_ref * p_break - (1 - p_ref) * p_fix
    for _ in range(trials):
        ref = rng.random(n) < p_ref
        art = np.where(ref, rng.random(n) >= p_break, rng.random(n) < p_fix)
        lo, hi = paired_difference(ref, art)
        covered += lo <= true_drop <= hi
        widths.append(hi - lo)
    assert 0.93 <= covered / trials <= 0.985, covered / trials
    # Pairing is what makes it narrow: the unpaired Wilson intervals of each accuracy are far wider.
    lo1, hi1 = wilson(int(n * p_ref), n)
    assert np.median(widths) < (hi1 - lo1)


def test_identical_answers_give_a_narrow_drop_interval_around_zero():
    """No input answered differently: the drop is 0 and its interval, though not empty (n is finite), is
    much narrower than either accuracy's own interval."""
    same = np.array([True] * 300 + [False] * 59)
    lo, hi = paired_difference(same, same)
    alo, ahi = wilson(300, 359)
    assert lo < 0 < hi and (hi - lo) < (ahi - alo) / 5


def test_resolution_notes_say_when_one_input_outweighs_the_gate():
    assert resolution_notes(359, "fp32", 0.1, 0.995) == ["359 inputs: one input is 0.28 pp; the fp32 gate is 0.1 pp"]
    assert resolution_notes(2000, "fp32", 0.1, 0.995) == []
    assert "of agreement" in resolution_notes(150, "fp32", None, 0.995)[0]


def _row(name, size, status, drop):
    return make_row(name, [figures(accuracy_drop_pp=drop, sqnr_db=30.0)], size_bytes=size, status=status)


def test_recommendation_stays_within_the_budget_not_just_the_gate_row():
    """As on a fresh `make demo`: pal4 passes its 3 pp gate row while losing 1.39 pp; pal6 loses nothing."""
    rows = [_row("pal4", 66_000, "passed", 1.39), _row("pal6", 89_000, "passed", 0.0),
            _row("fp32", 380_000, "passed", 0.0)]
    assert recommend(rows, Budget(max_drop_pp=1.0))["ios"] == "pal6"
    assert "outside the budget: drop 1.39 pp > 1 pp" in rows[0].recommendation_reason
    assert recommend(rows, Budget(max_drop_pp=2.0))["ios"] == "pal4"


def test_sqnr_budget_holds_unlabelled_outputs():
    def reg(name, size, sqnr):
        return make_row(name, [figures("y", "regression", sqnr_db=sqnr)], size_bytes=size)

    rows = [reg("int8", 10, 22.0), reg("fp16", 20, 70.0)]
    assert recommend(rows, Budget(max_drop_pp=1.0))["ios"] == "int8"  # nothing labelled: the gate alone
    assert recommend(rows, Budget(max_drop_pp=1.0, min_sqnr_db=30.0))["ios"] == "fp16"
    assert recommend(rows, Budget(min_sqnr_by_output=(("y", 20.0),)))["ios"] == "int8"
