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


def test_pass_at_k_equals_brute_force_enumeration():
    import itertools

    from sfn.eval.stats import pass_at_k

    for n in range(1, 7):
        for c in range(n + 1):
            outcomes = [True] * c + [False] * (n - c)
            for k in range(1, n + 1):
                subsets = list(itertools.combinations(outcomes, k))
                expected = sum(any(subset) for subset in subsets) / len(subsets)
                assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12), (n, c, k)
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)


def test_k_values_are_one_and_powers_of_two():
    from sfn.eval.stats import k_values

    assert k_values(1) == [1] and k_values(5) == [1, 2, 4] and k_values(64) == [1, 2, 4, 8, 16, 32, 64]


def test_majority_vote_groups_equivalent_answers():
    from sfn.eval.answers import numbers_equal
    from sfn.eval.stats import majority_at_k, majority_correct

    # "18.00" and "$18" are the same answer as 18: three votes against two for 17.
    answers = ["17", "18.00", "17", "$18", "18"]
    correct = [False, True, False, True, True]
    assert majority_correct(answers, correct, numbers_equal) == 1.0
    assert majority_correct(answers, correct, lambda a, b: a == b) == 0.0  # by string, 17 wins 2 to 1
    assert majority_correct(["17", "18", None, None], [False, True, False, False], numbers_equal) == 0.5  # a tie
    assert majority_correct([None, float("nan")], [False, False], numbers_equal) == 0.0
    # maj@2 over the 10 pairs of the five: both 18-class (3 pairs) wins; 18 vs 17 (6 pairs) ties at 1/2; 17+17 (1) loses.
    assert majority_at_k(answers, correct, 2, numbers_equal) == pytest.approx((3 + 6 * 0.5) / 10)


def test_bootstrap_interval_is_reproducible_and_covers_the_mean():
    from sfn.eval.stats import bootstrap_interval

    values = [0.0, 0.25, 1.0, 0.5, 0.75, 1.0, 0.0, 0.5]
    low, high = bootstrap_interval(values)
    assert bootstrap_interval(values) == (low, high)
    assert low < sum(values) / len(values) < high
    assert bootstrap_interval([1.0] * 5) == (1.0, 1.0)


def test_paired_difference_of_pass_rates():
    # Several samples per problem: the per-problem pass rates are compared, signs counted per problem.
    new = [1.0, 0.75, 0.5, 0.0]
    old = [0.5, 0.75, 0.0, 0.25]
    result = paired_difference(new, old)
    differences = [0.5, 0.0, 0.5, -0.25]
    mean = sum(differences) / 4
    half = 1.959963984540054 * math.sqrt((sum(d * d for d in differences) - 4 * mean * mean) / 16)
    assert result["difference"] == pytest.approx(mean)
    assert (result["low"], result["high"]) == pytest.approx((mean - half, mean + half))
    assert result["only_new"] == 2 and result["only_baseline"] == 1
    assert result["p_value"] == pytest.approx(1.0)  # sign test: 2 against 1 of 3
    # Booleans are the special case of rates 0 and 1.
    assert paired_difference([1, 0, 1], [0, 0, 1]) == paired_difference([1.0, 0.0, 1.0], [0.0, 0.0, 1.0])


def test_floor_warning_when_few_problems_are_solved():
    import pandas as pd

    from sfn.eval.stats import summarize

    frame = pd.DataFrame({"id": [str(i) for i in range(40)], "correct": [i < 3 for i in range(40)],
                          "extracted": ["1"] * 40, "tokens": [5] * 40, "truncated": [False] * 40, "level": [None] * 40})
    summary = summarize(frame, [])
    assert summary["floor_warning"].startswith("floor: 3 of 40 problems solved") and "cannot rank" in summary["floor_warning"]
    assert summary["problems_solved"] == 3
    frame["correct"] = [i < 20 for i in range(40)]
    assert summarize(frame, [])["floor_warning"] is None


def test_floor_counts_problems_not_correct_samples():
    import pandas as pd

    from sfn.eval.stats import summarize

    # 10 problems, 4 samples each: problems 0-2 solved by every sample (12 correct samples), the rest never.
    ids = [str(problem) for problem in range(10) for _ in range(4)]
    frame = pd.DataFrame({"id": ids, "sample": list(range(4)) * 10, "correct": [int(i) < 3 for i in ids],
                          "extracted": ["1"] * 40, "tokens": [5] * 40, "truncated": [False] * 40, "level": [None] * 40})
    summary = summarize(frame, [])
    assert summary["problems_solved"] == 3 and summary["accuracy"] == 0.3
    assert summary["floor_warning"].startswith("floor: 3 of 10 problems solved")


def test_problem_pass_rates_are_the_share_of_each_problems_samples():
    import pandas as pd

    from sfn.eval.stats import problem_pass_rates

    frame = pd.DataFrame({"id": ["b", "a", "b", "a", "b", "a"], "correct": [True, False, True, True, False, False]})
    rates = problem_pass_rates(frame)
    assert list(rates.index) == ["b", "a"] and list(rates) == [2 / 3, 1 / 3]


def test_wilson_bounds_are_exactly_zero_and_one_at_the_ends():
    assert wilson_interval(0, 100)[0] == 0.0  # the float formula alone leaves ~3.5e-18
    assert wilson_interval(100, 100)[1] == 1.0
    low, high = wilson_interval(5, 100)
    assert 0.0 < low < 0.05 < high < 1.0
