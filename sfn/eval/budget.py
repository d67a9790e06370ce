"""Budget forcing (s1, "simple test-time scaling") on top of any backend.

The thinking phase is generated with the end-of-thinking marker as a stop string. While "Wait"s
remain, a generated end marker (or end of sequence) is dropped and the wait text appended, so
the model keeps thinking. When thinking ends (by the model, or at `max_thinking_tokens`), the
end marker and an answer prefix are appended and the final answer is generated.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sfn.errors import SfnError, argument
from sfn.eval.backends.base import Backend
from sfn.eval.prompts import ThinkingMarkers

BUDGET_FORCING = re.compile(r"wait:(\d+)")


def parse_budget_forcing(text: str | None) -> int:
    """Number of forced 'Wait's from 'wait:N' (None or 'none' means 0)."""
    if text is None or text == "none":
        return 0
    match = BUDGET_FORCING.fullmatch(text.strip())
    if not match:
        raise SfnError(f"{argument('budget_forcing', text)}: expected 'wait:N' with N a whole number, e.g. 'wait:2'")
    return int(match.group(1))


@dataclass(frozen=True)
class Generation:
    """Everything generated after the prompt, including inserted waits and markers."""

    text: str
    num_tokens: int
    thinking_tokens: int
    waits: int
    truncated: bool


def generate_outputs(
    backend: Backend,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    thinking: ThinkingMarkers | None = None,
    waits: int = 0,
    wait_text: str = "Wait",
    max_thinking_tokens: int | None = None,
    max_answer_tokens: int = 512,
) -> list[Generation]:
    """Generate for all prompts together; with `thinking`, run the budget-forced thinking phase first."""
    if thinking is None:
        completions = backend.generate(prompts, [max_new_tokens] * len(prompts))
        return [Generation(c.text, c.num_tokens, 0, 0, c.finish_reason == "length") for c in completions]

    limit = min(max_thinking_tokens or max_new_tokens, max_new_tokens)
    texts = [""] * len(prompts)
    used = [0] * len(prompts)
    waits_used = [0] * len(prompts)
    thinking_rows = list(range(len(prompts)))
    while thinking_rows:
        completions = backend.generate(
            [prompts[row] + texts[row] for row in thinking_rows],
            [limit - used[row] for row in thinking_rows],
            stop=[thinking.end],
        )
        still_thinking = []
        for row, completion in zip(thinking_rows, completions):
            texts[row] += completion.text
            used[row] += completion.num_tokens
            model_ended = completion.finish_reason in ("stop", "eos")
            if model_ended and waits_used[row] < waits and used[row] < limit:
                texts[row] += wait_text
                waits_used[row] += 1
                still_thinking.append(row)
        thinking_rows = still_thinking

    thinking_tokens = list(used)
    for row in range(len(prompts)):
        texts[row] += thinking.end + thinking.answer_prefix
    answers = backend.generate([prompt + text for prompt, text in zip(prompts, texts)], [max_answer_tokens] * len(prompts))
    return [
        Generation(text + answer.text, tokens + answer.num_tokens, tokens, waits_row, answer.finish_reason == "length")
        for text, answer, tokens, waits_row in zip(texts, answers, thinking_tokens, waits_used)
    ]
