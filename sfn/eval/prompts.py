"""Turning a question into the text a model is asked to continue: chat template, R1's recommendation,
or plain completion ("raw")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sfn.errors import SfnError, argument

# auto: chat when the tokenizer has a chat template, else raw. raw: plain continuation ("plain" is
# its old name, still accepted). chat: the model's template. r1: DeepSeek-R1's recommendation, no
# system prompt and the reply forced to start with "<think>\n".
PROMPT_FORMATS = ("auto", "raw", "chat", "r1", "plain")
R1_REPLY_START = "<think>\n"
# What `sfn freeze` trains with: every format except R1's evaluation-only reply opening.
TRAINING_FORMATS = tuple(name for name in PROMPT_FORMATS if name != "r1")
# The "generate" interface: the paper found merged models answer coherently only when prompted
# as plain text, without the chat template's system prompt and role markers.
DEFAULT_PLAIN_TEMPLATE = "Question: {question}\n{instruction}\nAnswer:"


@dataclass(frozen=True)
class ThinkingMarkers:
    """Where a reasoning model's thinking starts and ends, and what asks for the final answer after it."""

    start: str
    end: str
    answer_prefix: str = "\nFinal Answer:"
    # The text that ends a thinking round when it is generated (s1 stops on any "<|im_start|>");
    # None means `end`.
    stop: str | None = None

    @property
    def round_stop(self) -> str:
        return self.end if self.stop is None else self.stop


THINKING_STYLES = {
    "r1": ThinkingMarkers("<think>\n", "</think>", "\n\nFinal Answer:"),
    "s1": ThinkingMarkers("<|im_start|>think\n", "<|im_start|>answer", "\nFinal Answer:"),
}


# The markers of the s1 and R1 budget-forcing protocols (`--budget-style s1|r1`). s1's are those of
# simplescaling/s1's harness defaults: thinking opens with "<|im_start|>think" (no newline), a round
# stops on any "<|im_start|>", and "\nFinal Answer:" follows the end marker only when the budget ran out.
PROTOCOL_MARKERS = {
    "s1": ThinkingMarkers("<|im_start|>think", "<|im_start|>answer", "\nFinal Answer:", stop="<|im_start|>"),
    "r1": ThinkingMarkers("<think>\n", "</think>", "\n\nFinal Answer:"),
}


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def resolve_format(prompt_format: str, tokenizer: Any) -> str:
    """The format actually used: "auto" becomes chat or raw by the tokenizer; "plain" is raw."""
    if prompt_format == "auto":
        return "chat" if has_chat_template(tokenizer) else "raw"
    return "raw" if prompt_format == "plain" else prompt_format


def build_prompt(
    question: str,
    tokenizer: Any,
    *,
    prompt_format: str = "chat",
    instruction: str = "",
    plain_template: str = DEFAULT_PLAIN_TEMPLATE,
    system_prompt: str | None = None,
    thinking: ThinkingMarkers | None = None,
) -> str:
    """The full prompt text; with `thinking`, it ends in the start-of-thinking marker."""
    prompt_format = resolve_format(prompt_format, tokenizer)
    if prompt_format in ("chat", "r1"):
        if not has_chat_template(tokenizer):
            raise SfnError(f"{argument('prompt_format', prompt_format, flag='--format')}: the tokenizer has no chat template; use "
                           f"{argument('prompt_format', 'raw', flag='--format')} (the 'generate' interface) or 'auto'")
        content = f"{question}\n\n{instruction}".strip()
        # R1's model card: no system prompt (the instruction goes in the user turn).
        with_system = system_prompt and prompt_format == "chat"
        messages = ([{"role": "system", "content": system_prompt}] if with_system else []) + [
            {"role": "user", "content": content}
        ]
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        if prompt_format == "r1" and not text.endswith(R1_REPLY_START):
            text += R1_REPLY_START
    elif prompt_format == "raw":
        text = plain_template.format(question=question, instruction=instruction)
    else:
        raise SfnError(f"unknown prompt format {prompt_format!r}; choose one of {', '.join(PROMPT_FORMATS)}")
    # R1-style chat templates already open the thinking block; opening it twice confuses the model.
    if thinking and not text.rstrip().endswith(thinking.start.strip()):
        text += thinking.start
    return text
