"""What every generation backend provides, so prompting and budget forcing work on any of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

FinishReason = Literal["stop", "eos", "length"]


@dataclass(frozen=True)
class Completion:
    """Text generated after a prompt, without the stop string or end-of-sequence token.

    `finish_reason` is "stop" (a stop string was generated), "eos" (the model ended) or
    "length" (the token limit cut it off).
    """

    text: str
    num_tokens: int
    finish_reason: FinishReason


class Backend(Protocol):
    """`generate` may also take, by keyword, `min_new_tokens` (the first tokens may be neither end of
    sequence nor a one-token stop string; s1's budget forcing) and `seeds` (one per prompt, for
    reproducible sampling); sfn passes them only when it needs them, so greedy evaluation works
    with backends that take neither. A `context_length` attribute, when present, lets evaluation
    refuse prompts that would run past the model's context."""

    tokenizer: Any

    def generate(self, prompts: Sequence[str], max_new_tokens: Sequence[int], stop: Sequence[str] = ()) -> list[Completion]:
        """One completion per prompt, each limited to its own number of new tokens."""
        ...
