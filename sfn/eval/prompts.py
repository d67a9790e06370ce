"""Turning a question into the text a model is asked to continue: chat template or plain completion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sfn.errors import SfnError, argument

PROMPT_FORMATS = ("chat", "plain")
# The "generate" interface: the paper found merged models answer coherently only when prompted
# as plain text, without the chat template's system prompt and role markers.
DEFAULT_PLAIN_TEMPLATE = "Question: {question}\n{instruction}\nAnswer:"


@dataclass(frozen=True)
class ThinkingMarkers:
    """Where a reasoning model's thinking starts and ends, and what asks for the final answer after it."""

    start: str
    end: str
    answer_prefix: str = "\nFinal Answer:"


THINKING_STYLES = {
    "r1": ThinkingMarkers("<think>\n", "</think>", "\n\nFinal Answer:"),
    "s1": ThinkingMarkers("<|im_start|>think\n", "<|im_start|>answer", "\nFinal Answer:"),
}


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
    if prompt_format == "chat":
        if not getattr(tokenizer, "chat_template", None):
            raise SfnError(f"the tokenizer has no chat template; use {argument('prompt_format', 'plain', flag='--format')}, the 'generate' interface")
        content = f"{question}\n\n{instruction}".strip()
        messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
            {"role": "user", "content": content}
        ]
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    elif prompt_format == "plain":
        text = plain_template.format(question=question, instruction=instruction)
    else:
        raise SfnError(f"unknown prompt format {prompt_format!r}; choose one of {', '.join(PROMPT_FORMATS)}")
    # R1-style chat templates already open the thinking block; opening it twice confuses the model.
    if thinking and not text.rstrip().endswith(thinking.start.strip()):
        text += thinking.start
    return text
