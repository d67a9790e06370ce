"""Paired accuracy differences: exact values on hand-counted examples."""

import math

import pytest

from sfn.eval.stats import paired_difference, wilson_interval


def test_paired_difference_counts_only_the_discordant_problems():
    # 10 problems: both right on 3, only the new model on 4, only the baseline on 1, both wrong on 2.
    new = [1, 1, 1, 1, 1, 1, 1, 0, 0, 0]
    old = [1, 1, 1, 0, 0, 0, 0, 1, 0, 0]
    result = paired_difference(new, old)
    assert result["only_new"] == 4 and result["only_baseline"] == 1
    assert result["difference"] == pytest.approx(0.3)
    half = 1.959963984540054 * math.sqrt((4 + 1 - 10 * 0.3**2) / 100)
    assert (result["low"], result["high"]) == pytest.approx((0.3 - half, 0.3 + half))
    # Exact McNemar: P(X <= 1) for X ~ Binomial(5, 1/2), doubled = 2 * 6/32.
    assert result["p_value"] == pytest.approx(12 / 32)


def test_identical_models_differ_by_nothing_and_lengths_must_match():
    same = paired_difference([1, 0, 1], [1, 0, 1])
    assert (same["difference"], same["low"], same["high"], same["p_value"]) == (0.0, 0.0, 0.0, 1.0)
    with pytest.raises(ValueError):
        paired_difference([1, 0], [1])


def test_pairing_is_tighter_than_two_wilson_intervals():
    # 200 problems; the new model solves 14 more and loses none: independent intervals overlap, the pair does not.
    new = [1] * 30 + [0] * 170
    old = [1] * 16 + [0] * 184
    assert wilson_interval(30, 200)[0] < wilson_interval(16, 200)[1]
    result = paired_difference(new, old)
    assert result["low"] > 0 and result["p_value"] < 0.001
