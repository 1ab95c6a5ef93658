import pytest

from bench.compare import (NO_PUBLISHED, NO_TOLERANCE, NOT_MEASURED, NOTED, OUTSIDE, WITHIN,
                           compare_cell, decimals_of, round_half_up)
from bench.suite import Tolerance


@pytest.mark.parametrize("published, measured, tol, status", [
    (1.1, 1.14, Tolerance(abs=0.05), WITHIN),
    (1.1, 1.06, Tolerance(abs=0.05), WITHIN),
    (1.1, 1.2, Tolerance(abs=0.05), OUTSIDE),
    (1.1, 1.0, Tolerance(abs=0.05), OUTSIDE),
    (200.0, 205.9, Tolerance(rel=0.03), WITHIN),
    (200.0, 193.9, Tolerance(rel=0.03), OUTSIDE),
    (200.0, 206.5, Tolerance(rel=0.03), OUTSIDE),
    (200.0, 206.5, Tolerance(abs=7.0, rel=0.03), WITHIN),    # the larger bound applies
    (64.8, 70.0, Tolerance(abs=1.0, side="below"), WITHIN),  # doing better never fails
    (64.8, 63.9, Tolerance(abs=1.0, side="below"), WITHIN),
    (64.8, 63.5, Tolerance(abs=1.0, side="below"), OUTSIDE),
    (100.0, 80.0, Tolerance(abs=1.0, side="above"), WITHIN),  # a budget: less is fine
    (100.0, 101.5, Tolerance(abs=1.0, side="above"), OUTSIDE),
])
def test_tolerance_sides(published, measured, tol, status):
    v = compare_cell(published, measured, tol)
    assert v.status == status
    assert v.delta == pytest.approx(measured - published)
    assert v.fails_gate == (status == OUTSIDE)


def test_allowed_bound_and_float_noise_at_the_boundary():
    v = compare_cell(200.0, 205.0, Tolerance(rel=0.03))
    assert v.allowed == pytest.approx(6.0)
    # 0.75 - 0.7 == 0.05000000000000004 in floats: still on the bound, not outside
    assert compare_cell(0.7, 0.75, Tolerance(abs=0.05)).status == WITHIN
    assert compare_cell(0.7, 0.7501, Tolerance(abs=0.05)).status == OUTSIDE


def test_known_deviation_is_noted_not_failed():
    v = compare_cell(0.7, 0.9, Tolerance(abs=0.05), known_deviation="stem counted twice")
    assert v.status == NOTED and not v.fails_gate
    assert v.reason == "stem counted twice"
    assert v.delta == pytest.approx(0.2) and v.allowed is None


def test_not_measured_no_published_no_tolerance():
    v = compare_cell(64.8, None, Tolerance(abs=1.0), reason="accuracy needs the full profile")
    assert (v.status, v.delta, v.reason) == (NOT_MEASURED, None, "accuracy needs the full profile")
    assert not v.fails_gate
    assert compare_cell(None, 1.2, Tolerance(abs=0.05)).status == NO_PUBLISHED
    v = compare_cell(1.1, 1.5, None)
    assert v.status == NO_TOLERANCE and v.delta == pytest.approx(0.4) and not v.fails_gate


def test_printed_match_rounds_half_up():
    # Python's round() gives 205.2 here (205.25 is exact in binary, ties go to even)
    assert round(205.25, 1) == 205.2
    assert compare_cell(205.3, 205.25).printed_match is True
    assert compare_cell(205.3, 205.24).printed_match is False
    assert compare_cell(1.1, 1.149, digits=1).printed_match is True
    assert compare_cell(1.1, 1.149, digits=2).printed_match is False
    assert round_half_up(2.675, 2) == 2.68        # as printed, not as stored in binary
    assert round_half_up(0.125, 2) == 0.13


@pytest.mark.parametrize("value, digits", [(205.3, 1), (0.75, 2), (1.125, 3), (64, 1), (12.0, 1),
                                           (551.7, 1), (3.0e2, 1)])
def test_decimals_of(value, digits):
    assert decimals_of(value) == digits
