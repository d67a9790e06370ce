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


def test_math_equivalent_without_math_verify(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "math_verify", None)  # import now raises ImportError
    assert math_equivalent("2*x + x", "3*x")
    assert math_equivalent("\\frac{\\sqrt{8}}{2}", "\\sqrt{2}")
    assert not math_equivalent("x", "2*x")


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
