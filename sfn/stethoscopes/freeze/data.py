"""Training data for the Freeze stethoscope: reading, formatting, and masking the prompt out of the loss.

Rows have a question, a reasoning trace and a final answer (renamed by a column mapping). GSM8K files
(`question` and `answer`, the answer a worked solution ending in `#### N`) are recognised: the solution
is the reasoning trace, with its `<<48/2=24>>` calculator marks stripped, and N the answer. The prompt
is built exactly as `sfn.eval` builds it (chat template or plain "generate" text, with the benchmark's
instruction), so a held-out evaluation asks what training taught.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sfn.errors import SfnError, SfnErrors, argument
from sfn.eval.benchmarks import BOXED_INSTRUCTION, read_jsonl, read_rows
from sfn.eval.prompts import build_prompt
from sfn.io.hub_datasets import load_hub_rows

ROLES = ("question", "reasoning", "answer")
# Column names tried, in order, when no mapping is given (GSM8K, s1K, s1K-1.1, common SFT sets).
GUESSED_COLUMNS = {
    "question": ("question", "problem", "prompt", "instruction"),
    "reasoning": ("reasoning", "thinking_trajectories", "deepseek_thinking_trajectory", "rationale", "solution"),
    "answer": ("answer", "attempt", "deepseek_attempt", "final_answer", "response"),
}
DEFAULT_RESPONSE_TEMPLATE = "{reasoning}\n\nFinal Answer: \\boxed{{{answer}}}"
CALCULATOR_MARK = re.compile(r"<<[^<>]*>>")
LOCAL_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
IGNORE_INDEX = -100  # label of tokens that add nothing to the loss


@dataclass(frozen=True)
class Record:
    question: str
    reasoning: str
    answer: str


def strip_calculator_marks(text: str) -> str:
    """GSM8K's `<<48/2=24>>` annotations are for a calculator tool, not part of the reasoning."""
    return CALCULATOR_MARK.sub("", text)


def gsm8k_record(question: str, solution: str) -> Record:
    reasoning, _, answer = solution.rpartition("####")
    return Record(question.strip(), strip_calculator_marks(reasoning).strip(), answer.strip().replace(",", ""))


def _missing(value: Any) -> bool:
    """None, or the NaN pandas puts where a row lacks a column (which str() would make the text 'nan')."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):  # s1K stores its thinking trajectories as a list
        return "\n".join(str(v) for v in value)
    return "" if _missing(value) else str(value)


def _row_names(path: Path, rows: list[dict[str, Any]]) -> list[str]:
    """How a message names each row: its line in a JSONL or CSV file, else its position."""
    if path.suffix == ".jsonl":
        with open(path, "rb") as handle:
            lines = [number for number, raw in enumerate(handle, 1) if raw.strip()]
        return [f"line {number}" for number in lines[: len(rows)]]
    if path.suffix == ".csv":
        return [f"line {index + 2}" for index in range(len(rows))]  # line 1 is the header
    return [f"record {index + 1}" for index in range(len(rows))]


def read_records(source: str | Path, columns: dict[str, str] | None = None, limit: int | None = None) -> list[Record]:
    """Records from a local .jsonl/.json/.csv/.parquet file or a hub dataset id (`org/name[:config]`, split `train`)."""
    path = Path(source).expanduser()
    if path.suffix == ".jsonl" and path.is_file():
        rows = [row for _, row in read_jsonl(path)]
    elif path.exists() or path.suffix in LOCAL_SUFFIXES:
        rows = read_rows(path)
    else:
        rows = load_hub_rows(str(source), "train", hint="download it elsewhere and pass the JSONL file instead")
    if not rows:
        raise SfnError(f"{source}: no rows")
    available = list(rows[0])
    columns = dict(columns or {})
    unknown_roles = sorted(set(columns) - set(ROLES))
    if unknown_roles:
        raise SfnError(f"column mapping: unknown role(s) {unknown_roles}; use question=COL,reasoning=COL,answer=COL")
    missing = [f"{role}={column}" for role, column in columns.items() if column not in available]
    if missing:
        raise SfnError(f"{source}: column mapping names missing column(s) {', '.join(missing)}; the data has {', '.join(available)}")
    for role in ROLES:
        if role not in columns:
            found = next((c for c in GUESSED_COLUMNS[role] if c in available and c not in columns.values()), None)
            if found:
                columns[role] = found
    if "question" not in columns or ("reasoning" not in columns and "answer" not in columns):
        raise SfnError(
            f"{source}: cannot tell which columns hold the question and the response (columns: {', '.join(available)}); "
            f"map them with {argument('columns')}: question=COL,reasoning=COL,answer=COL"
        )
    rows = rows[:limit] if limit else rows
    _check_rows(path, rows, columns)
    is_gsm8k = "reasoning" not in columns and all("####" in _text(row[columns["answer"]]) for row in rows[:20])
    if is_gsm8k:
        return [gsm8k_record(_text(row[columns["question"]]), _text(row[columns["answer"]])) for row in rows]
    return [
        Record(
            _text(row[columns["question"]]).strip(),
            _text(row.get(columns.get("reasoning", ""), "")).strip(),
            _text(row.get(columns.get("answer", ""), "")).strip(),
        )
        for row in rows
    ]


def _check_rows(path: Path, rows: list[dict[str, Any]], columns: dict[str, str]) -> None:
    """Every row has its question and (when the data has one) its answer; else name each row that lacks one."""
    names = _row_names(path, rows) if path.is_file() else [f"row {index + 1}" for index in range(len(rows))]
    required = [columns[role] for role in ("question", "answer") if role in columns]
    problems = [
        f"{name}: no {column!r} (missing, null or empty)"
        for name, row in zip(names, rows)
        for column in required
        if _missing(row.get(column)) or not _text(row.get(column)).strip()
    ]
    if problems:
        shown = problems[:20] + ([f"... {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise SfnErrors(shown, f"{path}: {len(problems)} training rows lack a field they need (a row without its answer would train on 'nan')")


def response_text(record: Record, template: str = DEFAULT_RESPONSE_TEMPLATE) -> str:
    """What the model learns to write: the reasoning, then the answer (either may be absent)."""
    if not record.reasoning:
        return record.answer
    if not record.answer:
        return record.reasoning
    return template.format(reasoning=record.reasoning, answer=record.answer)


@dataclass(frozen=True)
class Formatting:
    prompt_format: str = "chat"  # "chat" (the tokenizer's template) or "plain"
    instruction: str = BOXED_INSTRUCTION
    response_template: str = DEFAULT_RESPONSE_TEMPLATE


def _encode(tokenizer: Any, text: str, *, at_start: bool) -> list[int]:
    # Chat templates already start with BOS; adding it again would shift every position (as sfn.eval does).
    bos = tokenizer.bos_token
    add_special = at_start and not (bos and text.startswith(bos))
    return tokenizer(text, add_special_tokens=add_special)["input_ids"]


def tokenize_record(record: Record, tokenizer: Any, formatting: Formatting, seq_len: int) -> dict[str, list[int]] | None:
    """input_ids and labels (the prompt's labels IGNORE_INDEX), cut to `seq_len`; None if no response fits."""
    prompt = build_prompt(record.question, tokenizer, prompt_format=formatting.prompt_format, instruction=formatting.instruction)
    response = response_text(record, formatting.response_template)
    if formatting.prompt_format == "chat":
        messages = [{"role": "user", "content": f"{record.question}\n\n{formatting.instruction}".strip()}]
        full = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": response}], tokenize=False)
        # The template's own end-of-turn text is what generation must learn to stop with.
        tail = full[len(prompt):] if full.startswith(prompt) else response + (tokenizer.eos_token or "")
        response_ids = _encode(tokenizer, tail, at_start=False)
    else:
        response_ids = _encode(tokenizer, " " + response, at_start=False)
        if tokenizer.eos_token_id is not None:
            response_ids.append(tokenizer.eos_token_id)
    prompt_ids = _encode(tokenizer, prompt, at_start=True)
    input_ids = (prompt_ids + response_ids)[:seq_len]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + response_ids)[:seq_len]
    if all(label == IGNORE_INDEX for label in labels):
        return None
    return {"input_ids": input_ids, "labels": labels}


class TokenizedDataset(torch.utils.data.Dataset):
    def __init__(self, items: list[dict[str, list[int]]]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.items[index]

    @property
    def num_tokens(self) -> int:
        return sum(len(item["input_ids"]) for item in self.items)


@dataclass
class PreparedData:
    train: TokenizedDataset
    heldout: TokenizedDataset | None
    dropped: int  # records whose prompt alone filled the sequence length
    records: int


def prepare_data(
    records: list[Record], tokenizer: Any, formatting: Formatting, seq_len: int, heldout: int, seed: int
) -> PreparedData:
    """Tokenize, drop records with no response token inside `seq_len`, and hold `heldout` of them out."""
    items = [tokenize_record(record, tokenizer, formatting, seq_len) for record in records]
    kept = [item for item in items if item is not None]
    if len(kept) <= heldout:
        raise SfnError(
            f"{len(kept)} usable examples (of {len(records)}; {len(records) - len(kept)} had no response token within "
            f"{argument('seq_len', seq_len)}) leave nothing to train on after holding out {heldout}; use more data or a smaller {argument('heldout')}"
        )
    order = list(range(len(kept)))
    random.Random(seed).shuffle(order)
    held = sorted(order[:heldout])
    held_set = set(held)
    train = [kept[i] for i in range(len(kept)) if i not in held_set]
    return PreparedData(
        TokenizedDataset(train), TokenizedDataset([kept[i] for i in held]) if held else None, len(records) - len(kept), len(records)
    )


class PaddingCollator:
    """Pads a batch on the right: pad id for inputs, IGNORE_INDEX for labels, zeros in the attention mask."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(item["input_ids"]) for item in batch)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, item in enumerate(batch):
            n = len(item["input_ids"])
            input_ids[row, :n] = torch.as_tensor(item["input_ids"])
            labels[row, :n] = torch.as_tensor(item["labels"])
            attention_mask[row, :n] = 1
        return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
