"""`--backend-arg KEY=VALUE`: typed like lm-eval's model_args, checked before any engine starts."""

import pytest
from click.testing import CliRunner

from sfn.errors import SfnError
from sfn.eval.cli import eval_command
from sfn.eval.config import EvalConfig, parse_backend_args


@pytest.fixture
def problems(tmp_path):
    path = tmp_path / "problems.jsonl"
    path.write_text('{"question": "What is 2 plus 3?", "answer": "#### 5"}\n')
    return str(path)


def test_values_read_as_json_when_they_can_else_as_text():
    parsed = parse_backend_args(["tensor_parallel_size=4", "gpu_memory_utilization=0.5", "enforce_eager=true",
                                 "dtype=bfloat16", "revision=main", "max_model_len=4096", "tokenizer=org/name"])
    assert parsed == {"tensor_parallel_size": 4, "gpu_memory_utilization": 0.5, "enforce_eager": True, "dtype": "bfloat16",
                      "revision": "main", "max_model_len": 4096, "tokenizer": "org/name"}


def test_every_malformed_argument_is_reported_at_once():
    with pytest.raises(SfnError) as caught:
        parse_backend_args(["tensor_parallel_size", "=4", "dtype=float32", "dtype=bfloat16"])
    message = str(caught.value)
    assert "'tensor_parallel_size'" in message and "'=4'" in message and "dtype is given twice" in message


def test_engine_settings_are_refused_for_the_hf_backend(problems):
    with pytest.raises(SfnError, match="engine settings are for --backend vllm"):
        EvalConfig(backend_args={"dtype": "float32"}).resolved()
    result = CliRunner().invoke(eval_command, ["some/model", "--data", str(problems), "--backend-arg", "dtype=float32"])
    assert result.exit_code != 0 and "engine settings are for --backend vllm" in result.output


def test_the_cli_passes_engine_settings_to_the_vllm_backend(problems, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "vllm", None)  # stops at the import, after the settings were checked
    result = CliRunner().invoke(eval_command, ["some/model", "--data", str(problems), "--limit", "1", "--backend", "vllm",
                                               "--backend-arg", "tensor_parallel_size=4", "--no-levels"])
    assert result.exit_code != 0 and "needs vLLM" in result.output and "Traceback" not in result.output
