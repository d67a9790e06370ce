"""Reading and formatting training data: GSM8K cleaning, column mapping, response-only labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sfn.errors import SfnError
from sfn.stethoscopes.freeze.data import (
    IGNORE_INDEX,
    Formatting,
    PaddingCollator,
    Record,
    gsm8k_record,
    prepare_data,
    read_records,
    response_text,
    strip_calculator_marks,
    tokenize_record,
)
from sfn.eval.prompts import build_prompt

RECORD = Record("What is 2 plus 3?", "2 plus 3 is 5.", "5")


def test_gsm8k_solution_becomes_clean_reasoning_and_answer() -> None:
    solution = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nAltogether 48+24 = <<48+24=72>>72.\n#### 1,072"
    record = gsm8k_record(" How many? ", solution)
    assert record == Record("How many?", "Natalia sold 48/2 = 24 clips in May.\nAltogether 48+24 = 72.", "1072")
    assert strip_calculator_marks("a <<1+1=2>>2 b") == "a 2 b"


def test_read_gsm8k_style_file(reasoning_data: Path) -> None:
    records = read_records(reasoning_data, limit=5)
    assert len(records) == 5
    assert records[0] == Record("What is 2 plus 3?", "2 plus 3 is 5.", "5")


def test_column_mapping_and_list_valued_reasoning(tmp_path: Path) -> None:
    path = tmp_path / "s1.jsonl"
    row = {"problem": "Q?", "thinking_trajectories": ["step one", "step two"], "attempt": "42", "extra": 1}
    path.write_text(json.dumps(row) + "\n")
    assert read_records(path) == [Record("Q?", "step one\nstep two", "42")]  # s1K column names are guessed
    mapped = read_records(path, {"question": "problem", "reasoning": "extra", "answer": "attempt"})
    assert mapped == [Record("Q?", "1", "42")]
    with pytest.raises(SfnError, match="missing column"):
        read_records(path, {"question": "prompt_text"})
    with pytest.raises(SfnError, match="unknown role"):
        read_records(path, {"solution": "attempt"})


def test_hub_dataset_fails_clearly_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(SfnError, match="simplescaling/s1K"):
        read_records("simplescaling/s1K-1.1")


@pytest.mark.parametrize("prompt_format", ["chat", "plain"])
def test_prompt_tokens_are_masked(prompt_format: str, build_model) -> None:
    _, tokenizer = build_model()
    formatting = Formatting(prompt_format=prompt_format)
    item = tokenize_record(RECORD, tokenizer, formatting, seq_len=1000)
    prompt = build_prompt(RECORD.question, tokenizer, prompt_format=prompt_format, instruction=formatting.instruction)
    prompt_ids = tokenizer(prompt, add_special_tokens=not prompt.startswith(tokenizer.bos_token))["input_ids"]
    n = len(prompt_ids)
    assert item["input_ids"][:n] == prompt_ids
    assert item["labels"][:n] == [IGNORE_INDEX] * n
    assert item["labels"][n:] == item["input_ids"][n:]  # every response token is learned
    learned = tokenizer.decode(item["labels"][n:])
    assert learned.strip().startswith(response_text(RECORD))
    assert tokenizer.eos_token in learned  # the model learns to stop


def test_truncation_drops_examples_without_response_tokens(build_model) -> None:
    _, tokenizer = build_model()
    formatting = Formatting()
    full = tokenize_record(RECORD, tokenizer, formatting, seq_len=1000)
    prompt_length = full["labels"].count(IGNORE_INDEX)
    cut = tokenize_record(RECORD, tokenizer, formatting, seq_len=prompt_length + 3)
    assert len(cut["input_ids"]) == prompt_length + 3 and sum(t != IGNORE_INDEX for t in cut["labels"]) == 3
    assert tokenize_record(RECORD, tokenizer, formatting, seq_len=prompt_length) is None
    prepared = prepare_data([RECORD] * 6, tokenizer, formatting, seq_len=1000, heldout=2, seed=0)
    assert (len(prepared.train), len(prepared.heldout), prepared.dropped) == (4, 2, 0)
    with pytest.raises(SfnError, match="had no response token"):
        prepare_data([RECORD] * 6, tokenizer, formatting, seq_len=prompt_length, heldout=2, seed=0)


def test_collator_pads_inputs_and_ignores_padding_in_labels() -> None:
    batch = PaddingCollator(pad_id=2)([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 2, 2]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_real_gsm8k_traces_are_clean(gsm8k_train: Path) -> None:
    records = read_records(gsm8k_train, limit=200)
    assert len(records) == 200
    assert all("<<" not in r.reasoning and "####" not in r.reasoning and r.reasoning for r in records)
    assert all(r.answer.lstrip("-").replace(".", "").isdigit() for r in records)


class _FakeDatasets:
    """The two `datasets` calls a hub id makes, answered like the hub answers for openai/gsm8k."""

    def __init__(self):
        self.loaded = []

    def get_dataset_config_names(self, dataset, revision=None):
        return ["main", "socratic"]

    def load_dataset(self, dataset, config, split, revision=None):
        self.loaded.append((dataset, config, split, revision))
        return [{"question": "Tom has 3 apples and buys 4. How many?", "answer": "3+4=<<3+4=7>>7\n#### 7"}]


@pytest.mark.parametrize(
    ("source", "config", "revision"),
    [("openai/gsm8k", "main", None), ("openai/gsm8k:socratic", "socratic", None), ("openai/gsm8k:main@abc123", "main", "abc123")],
)
def test_hub_dataset_id_with_or_without_config(monkeypatch: pytest.MonkeyPatch, source, config, revision) -> None:
    import datasets

    fake = _FakeDatasets()
    monkeypatch.setattr(datasets, "get_dataset_config_names", fake.get_dataset_config_names)
    monkeypatch.setattr(datasets, "load_dataset", fake.load_dataset)
    assert read_records(source) == [Record("Tom has 3 apples and buys 4. How many?", "3+4=7", "7")]
    assert fake.loaded == [("openai/gsm8k", config, "train", revision)]


def test_hub_dataset_with_several_configs_and_none_usual_asks_which(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    monkeypatch.setattr(datasets, "get_dataset_config_names", lambda dataset, revision=None: ["en", "fr"])
    with pytest.raises(SfnError, match="has configs en, fr; name one as 'org/multi:CONFIG'"):
        read_records("org/multi")
