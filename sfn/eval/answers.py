"""Pulling the final answer out of a model's output, and deciding whether it equals the reference.

Extractors map output text to an answer string (or None when nothing answer-like is there);
comparers map (extracted, reference) to a bool. Both are registered by name so benchmark specs
(YAML included) can refer to them as strings.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from fractions import Fraction

Extractor = Callable[[str], "str | None"]
Comparer = Callable[[str, str], bool]

# A number as people write it: optional sign and currency, thousands separators (comma, or a space
# between groups of exactly three digits: "1 234"), decimals. A minus sign counts only when it is
# attached to the number and does not follow a word or bracket: "- 5" is a bullet and "a - b" or
# "3-5" a subtraction, neither is the number -5.
_SIGN = r"(?:(?<![\w)\]}])-)?"
_DIGITS = r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d{1,3}(?:[ \u00a0\u202f]\d{3})+(?!\d)|\d+)"
NUMBER = re.compile(_SIGN + r"(?:\$\s?)?" + _DIGITS + r"(?:\.\d+)?|" + _SIGN + r"\.\d+")
GSM8K_ANSWER = re.compile(r"####\s*(" + NUMBER.pattern + ")")
# lm-evaluation-harness's GSM8K filters, as its gsm8k task defines them (strict-match takes the
# first match and needs the space after ####; flexible-extract the last match).
LM_EVAL_STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
LM_EVAL_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
LM_EVAL_IGNORED = (re.compile(","), re.compile(r"\$"), re.compile(r"(?s).*#### "), re.compile(r"\.$"))
# "The final answer is 7", and the "Final Answer:" that budget forcing appends.
FINAL_ANSWER = re.compile(r"final answer(?:\s+is\b|\s*:)[:\s]*(.+)", re.IGNORECASE)
BOX_COMMANDS = ("\\boxed", "\\fbox")
# Units and words that trail an answer without changing its value ("18 dollars", "5 \text{cm}").
TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")
UNIT_WORDS = re.compile(
    r"\s*(?:dollars?|cents?|hours?|minutes?|seconds?|days?|weeks?|years?|meters?|cm|km|kg|g|"
    r"miles?|feet|inches|pounds?|degrees?|units?|percent|%|\^\{?\\circ\}?|°)\.?\s*$",
    re.IGNORECASE,
)
# After "answer", a capital letter, or a small one only when it ends the line ("Answer: c"): "the
# answer is a safe bet" is no option A. A bare letter counts only alone on its line, never the
# article "A" inside a sentence.
LETTER_PATTERNS = [
    re.compile(r"(?im)answer\s*(?:is|:)?[ \t:]*\(?\**(?:(?-i:([A-D]))\b|(?-i:([a-d]))\)?\**\.?[ \t]*$)"),
    re.compile(r"\\boxed\{\s*\(?([A-D])\)?\s*\}"),
    re.compile(r"\(([A-D])\)"),
    re.compile(r"(?m)^\W*([A-D])\W*$"),
]


def last_boxed(text: str) -> str | None:
    """Contents of the last `\\boxed{...}` (or `\\fbox{...}`), nested braces included."""
    start, command = max((text.rfind(command), command) for command in BOX_COMMANDS)
    if start < 0:
        return None
    rest = text[start + len(command) :]
    if not rest.lstrip().startswith("{"):
        # `\boxed 5`: TeX takes the next token as the argument; never a brace further on.
        token = re.match(r"\s+([^\s${}]+)", rest)
        return token.group(1).rstrip(".") if token else None
    brace = start + len(command) + len(rest) - len(rest.lstrip())
    depth = 0
    for position in range(brace, len(text)):
        if text[position] == "{":
            depth += 1
        elif text[position] == "}":
            depth -= 1
            if depth == 0:
                return text[brace + 1 : position].strip()
    return None  # unbalanced: the output was cut off inside the box


def gsm8k_strict(text: str) -> str | None:
    """sfn's own strict GSM8K answer: the number after the last `####` (space optional)."""
    matches = GSM8K_ANSWER.findall(text)
    return normalize_number(matches[-1]) if matches else None


def lm_eval_strict(text: str) -> str | None:
    """lm-evaluation-harness's GSM8K "strict-match": what follows the first `#### ` (space required)."""
    match = LM_EVAL_STRICT.search(text)
    return match.group(1) if match else None


def lm_eval_flexible(text: str) -> str | None:
    """lm-evaluation-harness's GSM8K "flexible-extract": the last number-like run of characters."""
    matches = LM_EVAL_FLEXIBLE.findall(text)
    if not matches:
        return None
    return next(group for group in matches[-1] if group)


def lm_eval_exact(extracted: str, reference: str) -> bool:
    """lm-evaluation-harness's GSM8K `exact_match`: both sides without commas, `$`, anything up to
    `#### ` and one trailing period, compared as lower-case strings ("18.00" is not "18")."""

    def clean(text: str) -> str:
        for pattern in LM_EVAL_IGNORED:
            text = pattern.sub("", text)
        return text.lower()

    return clean(extracted) == clean(reference)


def last_number(text: str) -> str | None:
    """The last number anywhere in the text (GSM8K's 'flexible' extraction)."""
    matches = NUMBER.findall(text)
    return normalize_number(matches[-1]) if matches else None


def final_answer_phrase(text: str) -> str | None:
    """What follows the last 'final answer is', up to the end of its sentence or line."""
    matches = FINAL_ANSWER.findall(text)
    if not matches:
        return None
    answer = matches[-1].split("\n")[0].strip()
    boxed = last_boxed(answer)
    if boxed is not None:
        return boxed
    answer = re.sub(r"\.\s.*$", "", answer).strip().rstrip(".").strip()
    return answer.strip("$ ").strip() or None


def math_answer(text: str) -> str | None:
    """The last box, else the 'final answer is' phrase, else the last number."""
    for extract in (last_boxed, final_answer_phrase, last_number):
        answer = extract(text)
        if answer:
            return answer
    return None


def integer_answer(text: str) -> str | None:
    """An AIME-style integer answer: the math answer, kept only if it is a whole number."""
    answer = math_answer(text)
    value = as_fraction(answer) if answer is not None else None
    if value is None or value.denominator != 1:
        return None
    return str(value.numerator)


def choice_letter(text: str) -> str | None:
    """The option letter (A-D) a multiple-choice output commits to."""
    boxed = last_boxed(text)
    if boxed and re.fullmatch(r"\(?([A-Da-d])\)?", boxed):
        return boxed.strip("()").upper()
    for pattern in LETTER_PATTERNS:
        matches = pattern.findall(text)
        if matches:
            last = matches[-1]
            return (last if isinstance(last, str) else "".join(last)).upper()
    return None


def normalize_number(text: str) -> str:
    """'$1,234.50' -> '1234.5'; leaves non-numbers as they are."""
    value = as_fraction(text)
    if value is None:
        return text.strip()
    if value.denominator == 1:
        return str(value.numerator)
    return format(float(value), "g") if _is_decimal(value) else f"{value.numerator}/{value.denominator}"


def _is_decimal(value: Fraction) -> bool:
    denominator = value.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    return denominator == 1


def strip_decorations(text: str) -> str:
    """Remove what surrounds an answer without changing it: $...$, \\text{units}, trailing periods."""
    text = text.strip().strip("$").strip()
    text = re.sub(r"^\\\(|\\\)$", "", text).strip()
    text = TEXT_WRAPPER.sub(lambda match: match.group(1), text)
    text = text.replace("\\!", "").replace("\\,", "").replace("\\ ", " ").replace("\\%", "%")
    text = re.sub(r"\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}", r"(\1)/(\2)", text)
    text = text.rstrip(".").strip()
    previous = None
    while previous != text:
        previous = text
        text = UNIT_WORDS.sub("", text).strip()
    return text


def as_fraction(text: str | None) -> Fraction | None:
    """Exact value of a plain number or a simple fraction ('1,000', '$5', '3/4', '(3)/(4)'), else None."""
    if text is None:
        return None
    cleaned = strip_decorations(text).replace("$", "")
    cleaned = re.sub(r"[ \u00a0\u202f]", "", cleaned)
    if re.fullmatch(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+", cleaned):
        return Fraction(cleaned.replace(",", ""))
    fraction = re.fullmatch(r"\(?(-?\d+)\)?/\(?(\d+)\)?", cleaned)
    if fraction and int(fraction.group(2)) != 0:
        return Fraction(int(fraction.group(1)), int(fraction.group(2)))
    return None


def numbers_equal(extracted: str, reference: str) -> bool:
    """Numeric equality: thousands separators, currency, units and trailing zeros don't matter."""
    left, right = as_fraction(extracted), as_fraction(reference)
    if left is None or right is None:
        return strip_decorations(extracted) == strip_decorations(reference)
    return left == right


def integers_equal(extracted: str, reference: str) -> bool:
    left, right = as_fraction(extracted), as_fraction(reference)
    return left is not None and right is not None and left.denominator == 1 and left == right


def letters_equal(extracted: str, reference: str) -> bool:
    return extracted.strip().strip("()").upper() == reference.strip().strip("()").upper()


def exact_match(extracted: str, reference: str) -> bool:
    return extracted.strip() == reference.strip()


def math_equivalent(extracted: str, reference: str) -> bool:
    """Mathematical equivalence: plain normalisation first, then math-verify (a dependency of sfn)."""
    if strip_decorations(extracted).replace(" ", "") == strip_decorations(reference).replace(" ", ""):
        return True
    left, right = as_fraction(extracted), as_fraction(reference)
    if left is not None and right is not None:
        return left == right
    from math_verify import parse, verify  # imported on first use: it loads sympy

    # math-verify times out with SIGALRM, which only works on the main thread.
    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    gold = parse(f"${reference}$", parsing_timeout=timeout)
    answer = parse(f"${extracted}$", parsing_timeout=timeout)
    return bool(gold and answer and verify(gold, answer, timeout_seconds=timeout))


EXTRACTORS: dict[str, Extractor] = {
    "gsm8k_strict": gsm8k_strict,
    "lm_eval_strict": lm_eval_strict,
    "lm_eval_flexible": lm_eval_flexible,
    "last_number": last_number,
    "boxed": last_boxed,
    "final_answer": final_answer_phrase,
    "math": math_answer,
    "integer": integer_answer,
    "letter": choice_letter,
}
COMPARERS: dict[str, Comparer] = {
    "number": numbers_equal,
    "math": math_equivalent,
    "integer": integers_equal,
    "letter": letters_equal,
    "exact": exact_match,
    "lm_eval_exact": lm_eval_exact,
}
