"""Training data for `sfn freeze`: a row without its answer, a line that is not JSON or not UTF-8, named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hostile.hostile_inputs import arithmetic_rows, write_jsonl
from sfn.errors import SfnError
from sfn.stethoscopes.freeze import read_records


@pytest.mark.parametrize("answer", ["absent", None], ids=["no answer field", "null answer"])
def test_a_row_without_its_answer_is_named_not_trained_on_as_nan(tmp_path: Path, answer) -> None:
    rows = [{"question": "What is 2 plus 3?", "reasoning": "2 and 3 make 5.", "answer": "5"} for _ in range(4)]
    if answer == "absent":
        del rows[2]["answer"]
    else:
        rows[2]["answer"] = answer
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    with pytest.raises(SfnError, match=r"line 3: no 'answer' \(missing, null or empty\)") as error:
        read_records(path)
    assert str(path) in str(error.value)


def test_a_gsm8k_row_without_its_answer_is_named(tmp_path: Path) -> None:
    rows = arithmetic_rows(5)
    rows[4]["answer"] = None
    with pytest.raises(SfnError, match=r"line 5: no 'answer'"):
        read_records(write_jsonl(tmp_path / "train.jsonl", rows))


def test_a_csv_row_without_its_question_is_named_by_its_line(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("question,answer\nWhat is 1 plus 1?,2\n,3\n")
    with pytest.raises(SfnError, match=r"line 3: no 'question'"):
        read_records(path)


def test_malformed_jsonl_names_every_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    good = json.dumps(arithmetic_rows(1)[0])
    path.write_text(f"{good}\n{{\"question\": \"cut off\n{good}\n[1, 2]\n")
    with pytest.raises(SfnError) as error:
        read_records(path)
    message = str(error.value)
    assert str(path) in message and "line 2: not valid JSON" in message and "line 4: a JSON object per line is expected, got list" in message
    assert "line 1" not in message and "line 3" not in message


def test_non_utf8_training_data_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    good = json.dumps(arithmetic_rows(1)[0]).encode()
    path.write_bytes(good + b"\n" + b'{"question": "caf\xe9", "answer": "#### 1"}\n')
    with pytest.raises(SfnError, match=r"line 2: byte 0xe9 at column 18 is not UTF-8") as error:
        read_records(path)
    assert str(path) in str(error.value)
