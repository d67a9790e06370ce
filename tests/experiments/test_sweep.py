"""The destruction sweep: one row per configuration and prompt, the model restored after each."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from transformers import AutoModelForCausalLM, AutoTokenizer

from sfn.errors import SfnErrors
from sfn.experiments import sweep
from sfn.experiments.sweep import sweep_prompt
from sfn.stethoscopes.surgery.cli import destroy_command

PROMPTS = ["w1 w2 w3", "w10 w11"]


@dataclass
class _Grade:
    level: str
    reason: str


class _LengthGrader:
    def grade(self, prompt: str, output: str, reference: str | None = None) -> _Grade:
        return _Grade("III" if len(output.split()) > 2 else "I", f"{len(output.split())} words")


def test_sweep_table_and_restore(model_pair) -> None:
    base, _ = model_pair("llama")
    model, tokenizer = AutoModelForCausalLM.from_pretrained(base).eval(), AutoTokenizer.from_pretrained(base)
    original = {name: t.clone() for name, t in model.state_dict().items()}
    table = sweep(
        model, PROMPTS, tokenizer=tokenizer, kinds=["o", "up"], methods=["zero", "reinit", "remove"],
        layers=["3"], max_new_tokens=6, grader=_LengthGrader(),
    )
    # baseline + 2 kinds per edit method + 1 removal, each on 2 prompts
    assert len(table) == (1 + 2 * 2 + 1) * 2
    assert set(table["method"]) == {"none", "zero", "reinit", "remove"}
    assert set(table.query("method == 'remove'")["select"]) == {"all@3"}
    assert {"output", "tokens", "distinct_ratio", "repeated_3gram_share", "level", "reason"} <= set(table.columns)
    assert table["distinct_ratio"].between(0, 1).all()
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, original[name]), name
    assert model.config.num_hidden_layers == 4
    baseline = table.query("method == 'none'")["output"].tolist()
    again = sweep(model, PROMPTS, tokenizer=tokenizer, methods=[], max_new_tokens=6, grader=None)
    assert again["output"].tolist() == baseline and "level" not in again


def test_sweep_validates_everything_first(model_pair) -> None:
    base, _ = model_pair("gpt2")
    model, tokenizer = AutoModelForCausalLM.from_pretrained(base).eval(), AutoTokenizer.from_pretrained(base)
    with pytest.raises(SfnErrors) as caught:
        sweep(model, PROMPTS, tokenizer=tokenizer, kinds=["gate"], methods=["zero", "melt", "remove"], grader=None)
    text = str(caught.value)
    assert "melt" in text and "give layer ranges" in text and "gate" in text


def test_sweep_cli(model_pair, tmp_path: Path) -> None:
    base, _ = model_pair("llama")
    result = CliRunner().invoke(
        destroy_command,
        [str(base), "--sweep", "--prompt", "w1 w2", "--kinds", "o", "--methods", "zero", "--layers", "0-1",
         "--max-new-tokens", "4", "--no-levels", "--table", str(tmp_path / "t.csv")],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "t.csv").read_text().count("\n") == 3  # header, baseline, o@0-1


def test_sweep_generates_as_the_eval_backend_with_one_bos(model_pair) -> None:
    # A chat template that starts with BOS: the old sweep tokenised its text with a second BOS in front.
    base, _ = model_pair("llama")
    model, tokenizer = AutoModelForCausalLM.from_pretrained(base).eval(), AutoTokenizer.from_pretrained(base)
    tokenizer.chat_template = "<s> {% for m in messages %}{{ m['content'] }}{% endfor %} w9"
    table = sweep(model, ["w1 w2"], tokenizer=tokenizer, methods=[], max_new_tokens=5, grader=None)
    prompt = [tokenizer.bos_token_id, *tokenizer("w1 w2 w9", add_special_tokens=False)["input_ids"]]
    with torch.no_grad():
        expected = model.generate(torch.tensor([prompt]), max_new_tokens=5, do_sample=False, pad_token_id=0)[0, len(prompt):]
    ids = [token for token in expected.tolist() if token != tokenizer.eos_token_id]
    assert table.loc[0, "output"] == tokenizer.decode(ids, skip_special_tokens=False)
    assert sweep_prompt("w1 w2", tokenizer) == "<s> w1 w2 w9"
    assert sweep_prompt("w1 w2", tokenizer, "raw") == "w1 w2"  # prompts formatted already, as the demo's
