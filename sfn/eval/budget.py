"""Budget forcing (s1, "simple test-time scaling") on top of any backend, in three styles.

"sfn" (the original): thinking rounds stop at the end-of-thinking marker. While "Wait"s remain, a
generated end marker (or end of sequence) is dropped and the wait text appended, so the model
keeps thinking. When thinking ends (by the model, or at `max_thinking_tokens`), the end marker and
an answer prefix are always appended and the answer gets `max_answer_tokens`.

"s1" reproduces simplescaling/s1's lm-evaluation-harness fork (its vLLM model, `thinking_n_ignore`):
- a thinking round stops on the marker's `stop` (any "<|im_start|>") or end of sequence, and may
  not stop before its first token (s1's `min_tokens=1`, set whenever forcing is on);
- there are at most N + 1 rounds, each allowed the whole thinking budget; a round that stops
  before the last one is continued with the wait text, whose tokens count toward the budget;
- the thinking (waits included) is then cut to the budget; if the last round ran out of tokens,
  "\n" (unless the thinking already ends in one, or the start marker begins with one), the end
  marker and "\nFinal Answer:" follow; if the model ended it, the end marker alone;
- the answer may again have `max_new_tokens` (s1's `max_gen_toks`);
- every call stops where vLLM 0.6.4 (the version s1 pins) stops a sequence that outgrows the
  model's context: one token past it (when the backend tells its `context_length`);
- the output keeps the thinking as generated, uncut, as s1's logged output does: the answer phase
  was prompted with it cut to the budget.
"r1" is the s1 protocol with R1's markers: `</think>` ends a round and is kept in the output.

sfn works on text: each round's prompt is re-encoded, where s1 concatenates token ids; the two
agree except where a tokenizer merges across a join (".Wait" can be one token).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sfn.errors import SfnError, argument
from sfn.eval.backends.base import Backend
from sfn.eval.prompts import ThinkingMarkers

BUDGET_FORCING = re.compile(r"wait:(\d+)")
BUDGET_STYLES = ("sfn", "s1", "r1")


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
    style: str = "sfn",
    forcing: bool | None = None,
    seeds: Sequence[int] | None = None,
    stop: Sequence[str] = (),
) -> list[Generation]:
    """Generate for all prompts together; with `thinking`, run the budget-forced thinking phase first.
    `stop` ends a generation without thinking where one of its strings first appears.

    `seeds` (one per prompt) make sampled generation reproducible; each call derives its own seed
    from them. `forcing` (default: `waits` > 0) turns on the s1 styles' one-token minimum per round.
    """
    call = _Caller(backend, seeds)
    if thinking is None:
        completions = call(prompts, range(len(prompts)), [max_new_tokens] * len(prompts), stop=tuple(stop), phase="answer")
        return [Generation(c.text, c.num_tokens, 0, 0, c.finish_reason == "length") for c in completions]
    if style != "sfn":
        return _s1_style(call, backend.tokenizer, prompts, max_new_tokens, thinking, waits, wait_text,
                         max_thinking_tokens, waits > 0 if forcing is None else forcing)

    limit = min(max_thinking_tokens or max_new_tokens, max_new_tokens)
    texts = [""] * len(prompts)
    used = [0] * len(prompts)
    waits_used = [0] * len(prompts)
    thinking_rows = list(range(len(prompts)))
    while thinking_rows:
        completions = call(
            [prompts[row] + texts[row] for row in thinking_rows],
            thinking_rows,
            [limit - used[row] for row in thinking_rows],
            stop=[thinking.end],
            phase=[f"think{waits_used[row]}" for row in thinking_rows],
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
    answers = call([prompt + text for prompt, text in zip(prompts, texts)], range(len(prompts)),
                   [max_answer_tokens] * len(prompts), phase="answer")
    return [
        Generation(text + answer.text, tokens + answer.num_tokens, tokens, waits_row, answer.finish_reason == "length")
        for text, answer, tokens, waits_row in zip(texts, answers, thinking_tokens, waits_used)
    ]


def _s1_style(call, tokenizer, prompts: Sequence[str], max_new_tokens: int, markers: ThinkingMarkers, waits: int,
              wait_text: str, max_thinking_tokens: int | None, forcing: bool) -> list[Generation]:
    budget = min(max_thinking_tokens or max_new_tokens, max_new_tokens)
    minimum = 1 if forcing else 0
    wait_tokens = count_tokens(tokenizer, wait_text)
    texts = [""] * len(prompts)
    tokens = [0] * len(prompts)
    waits_used = [0] * len(prompts)
    ran_out = [False] * len(prompts)
    rows = list(range(len(prompts)))
    for round_number in range(waits + 1):
        if not rows:
            break
        # Every round may use the whole budget, as in s1; the total is cut to it afterwards.
        contexts = [prompts[row] + texts[row] for row in rows]
        completions = call(contexts, rows, call.within_context(contexts, budget), stop=[markers.round_stop],
                           min_new_tokens=minimum, phase=f"think{round_number}")
        continuing = []
        for row, completion in zip(rows, completions):
            texts[row] += completion.text
            tokens[row] += count_tokens(tokenizer, completion.text)
            if completion.finish_reason == "length" or round_number == waits:
                ran_out[row] = completion.finish_reason == "length"
            else:
                texts[row] += wait_text
                tokens[row] += wait_tokens
                waits_used[row] += 1
                continuing.append(row)
        rows = continuing

    heads, endings = [], []
    for row in range(len(prompts)):
        cut = texts[row]
        if tokens[row] > budget:
            cut = cut_tokens(tokenizer, cut, budget)
            tokens[row] = budget
        if ran_out[row]:
            # s1 looks at the last character before the cut, and at the start marker's first one.
            newline = "" if texts[row].endswith("\n") or markers.start.startswith("\n") else "\n"
            endings.append(newline + markers.end + markers.answer_prefix)
        else:
            endings.append(markers.end)
        heads.append(prompts[row] + cut + endings[-1])
    used = [count + count_tokens(tokenizer, ending) for count, ending in zip(tokens, endings)]
    answers = call(heads, range(len(prompts)), call.within_context(heads, max_new_tokens), phase="answer")
    return [
        Generation(text + ending + answer.text, count + answer.num_tokens, thinking, waits_row,
                   answer.finish_reason == "length")
        for text, ending, answer, count, thinking, waits_row in zip(texts, endings, answers, used, tokens, waits_used)
    ]


def count_tokens(tokenizer, text: str) -> int:
    """Tokens of `text` on its own (no special tokens added)."""
    if not text:
        return 0
    return len(tokenizer.encode(text, add_special_tokens=False))


def cut_tokens(tokenizer, text: str, limit: int) -> str:
    """The first `limit` tokens of `text`."""
    return tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)[:limit])


class _Caller:
    """Calls the backend, passing per-row seeds and a minimum length only when used, so backends
    without those options keep working for greedy runs. A row's seed for a call comes from its own
    seed and the phase (thinking round or answer) it is in, never from the other rows in the batch."""

    def __init__(self, backend: Backend, seeds: Sequence[int] | None):
        self.backend = backend
        self.seeds = seeds

    def __call__(self, prompts, rows, limits, stop=(), min_new_tokens: int = 0, *, phase: str | Sequence[str]):
        rows = list(rows)
        phases = [phase] * len(rows) if isinstance(phase, str) else list(phase)
        options: dict = {}
        if stop:
            options["stop"] = stop
        if min_new_tokens:
            options["min_new_tokens"] = min_new_tokens
        if self.seeds is not None:
            options["seeds"] = [derive_seed(self.seeds[row], name) for row, name in zip(rows, phases)]
        return self.backend.generate(list(prompts), list(limits), **options)

    def within_context(self, prompts: Sequence[str], limit: int) -> list[int]:
        """`limit` for each prompt, capped where vLLM 0.6.4 stops a sequence: once it is one token
        longer than the model's context (at least one token); uncapped when the backend does not say
        its `context_length` or cannot `encode`."""
        context = getattr(self.backend, "context_length", None)
        encode = getattr(self.backend, "encode", None)
        if not context or encode is None:
            return [limit] * len(prompts)
        return [max(min(limit, context + 1 - len(encode(prompt))), 1) for prompt in prompts]


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts (the run's seed, problem id, sample index, call), stable across runs."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1
