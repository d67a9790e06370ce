import pytest

from sfn.eval.answers import (
    as_fraction,
    choice_letter,
    final_answer_phrase,
    gsm8k_strict,
    integer_answer,
    integers_equal,
    last_boxed,
    last_number,
    letters_equal,
    math_answer,
    math_equivalent,
    numbers_equal,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("so \\boxed{42}.", "42"),
        ("first \\boxed{1} then \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}"),
        ("\\boxed{ {a}+{b} }", "{a}+{b}"),
        ("\\fbox{7}", "7"),
        ("cut off \\boxed{\\frac{1}{", None),
        ("no box here", None),
    ],
)
def test_last_boxed_handles_nesting(text, expected):
    assert last_boxed(text) == expected


def test_gsm8k_strict_and_flexible():
    output = "She sells 9 eggs at $2, so she makes 9 * 2 = $18.\n#### 18"
    assert gsm8k_strict(output) == "18"
    assert last_number(output) == "18"
    assert gsm8k_strict("The answer is 18.") is None
    assert last_number("The answer is 18.") == "18"
    assert gsm8k_strict("#### 1,234") == "1234"
    assert last_number("It costs $1,234.50 in total.") == "1234.5"
    assert last_number("a drop of -3 degrees") == "-3"
    assert last_number("nothing") is None


def test_final_answer_phrase():
    assert final_answer_phrase("Thus the final answer is $\\frac{3}{4}$. I hope") == "\\frac{3}{4}"
    assert final_answer_phrase("The final answer is: 12 apples.") == "12 apples"
    assert final_answer_phrase("The final answer is \\boxed{5}.") == "5"
    assert math_answer("blah 3 then 4, the final answer is 7.") == "7"
    assert math_answer("numbers 3 and 9") == "9"


@pytest.mark.parametrize(
    "extracted, reference",
    [
        ("1,000", "1000"),
        ("$18", "18"),
        ("18.00", "18"),
        ("18 dollars", "18"),
        ("5 \\text{ cm}", "5"),
        ("50\\%", "50"),
        ("0.5", "1/2"),
    ],
)
def test_numbers_equal(extracted, reference):
    assert numbers_equal(extracted, reference)


def test_numbers_differ():
    assert not numbers_equal("17", "18")
    assert not numbers_equal("1.8", "18")


@pytest.mark.parametrize(
    "extracted, reference",
    [
        ("\\frac{1}{2}", "0.5"),
        ("\\dfrac{1}{2}", "\\frac12"),
        ("\\frac{\\sqrt{18}}{3}", "\\sqrt{2}"),
        ("3\\sqrt{2}", "\\sqrt{18}"),
        ("x^2+2x+1", "(x+1)^2"),
        ("10", "10.0"),
        ("\\text{(C)}", "(C)"),
        ("90^\\circ", "90"),
        ("1,000", "1000"),
    ],
)
def test_math_equivalent(extracted, reference):
    assert math_equivalent(extracted, reference)


@pytest.mark.parametrize("extracted, reference", [("\\frac{1}{3}", "0.5"), ("x+1", "x-1"), ("2\\sqrt{2}", "\\sqrt{18}")])
def test_math_not_equivalent(extracted, reference):
    assert not math_equivalent(extracted, reference)


def test_integer_answers_for_aime():
    assert integer_answer("so we get \\boxed{033}") == "33"
    assert integer_answer("\\boxed{\\frac{1}{2}}") is None
    assert integers_equal("33", "033")
    assert not integers_equal("33.5", "33")


@pytest.mark.parametrize(
    "text, letter",
    [
        ("The answer is (B).", "B"),
        ("Answer: c", "C"),
        ("I think \\boxed{D}", "D"),
        ("Between (A) and (C), the correct one is (C)", "C"),
    ],
)
def test_choice_letter(text, letter):
    assert choice_letter(text) == letter


def test_letters_equal_and_fractions():
    assert letters_equal("(b)", "B")
    assert as_fraction("\\frac{3}{4}") == as_fraction("0.75")
    assert as_fraction("three") is None


@pytest.mark.parametrize(
    "text, expected",
    [
        # The prefix sfn's and s1's budget forcing append.
        ("...Wait\n<|im_start|>answer\nFinal Answer: \\frac{1}{2}", "\\frac{1}{2}"),
        ("Final Answer: 3\\sqrt{2}", "3\\sqrt{2}"),
        ("Final Answer:\n\\boxed{7}", "7"),
        ("The final answer is 12.", "12"),
    ],
)
def test_final_answer_prefix_after_forcing(text, expected):
    assert math_answer(text) == expected


def test_final_answer_fraction_is_equivalent_not_its_last_digit():
    assert math_equivalent(math_answer("2 ... Final Answer: \\frac{1}{2}"), "0.5")
    assert not math_equivalent(math_answer("Final Answer: 3\\sqrt{2}"), "2")


@pytest.mark.parametrize(
    "text, letter",
    [
        ("After all, the answer is a tricky one, but (B) fits.", "B"),
        ("Answer: C\nThis answer is a safe bet.", "C"),
        ("A good guess would be\nD", "D"),
        ("A careful reading settles it.", None),
    ],
)
def test_letters_are_not_articles(text, letter):
    assert choice_letter(text) == letter


@pytest.mark.parametrize(
    "text, number",
    [
        ("Steps:\n- 5 apples remain", "5"),
        ("so a - 5 is the rest", "5"),
        ("3-5 of them", "5"),
        ("it fell to -3", "-3"),
        ("(-2)", "-2"),
        ("in all 1 234 people", "1234"),
        ("1\u202f234 people", "1234"),
        ("items 12 and 345", "345"),
    ],
)
def test_signs_and_spaced_thousands(text, number):
    assert last_number(text) == number


def test_boxed_without_braces_takes_its_own_argument():
    assert last_boxed("so \\boxed 5. Then {7} follows") == "5"
    assert last_boxed("\\boxed{3} and \\fbox 4") == "4"
    assert last_boxed("\\boxed") is None


def test_lm_eval_gsm8k_filters_exactly():
    from sfn.eval.answers import lm_eval_exact, lm_eval_flexible, lm_eval_strict

    text = "First #### 12 then #### 18 and ####20"
    assert lm_eval_strict(text) == "12"  # the first, with the space
    assert gsm8k_strict(text) == "20"  # sfn's own: the last, space optional
    assert lm_eval_strict("####18") is None
    assert lm_eval_flexible("costs $18.00.") == "$18.00."
    assert lm_eval_flexible("it is 7") == "7"
    assert lm_eval_exact("$1,800.", "#### 1800") and not lm_eval_exact("18.00", "18")


def test_score_answer_reports_every_gsm8k_metric():
    import sfn

    scores = sfn.score_answer("She makes $18.00.\n#### 18.00", "18")
    assert scores["extracted"] == "18" and scores["correct"]  # numeric: 18.00 is 18
    assert scores["extracted_strict"] == "18.00" and not scores["correct_strict"]  # lm-eval: exact string
    assert scores["extracted_flexible_lm_eval"] == "18.00" and not scores["correct_flexible_lm_eval"]
    assert scores["extracted_sfn_strict"] == "18" and scores["correct_sfn_strict"]
    assert sfn.score_answer("\\boxed{B}", "B", "gpqa_diamond") == {"extracted": "B", "correct": True}
