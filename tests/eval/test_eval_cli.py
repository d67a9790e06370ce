import json

import pytest
from click.testing import CliRunner

from sfn.eval.cli import eval_command


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, tiny_model, tiny_tokenizer):
    directory = tmp_path_factory.mktemp("tiny-llama")
    tiny_model.save_pretrained(directory)
    tiny_tokenizer.save_pretrained(directory)
    return directory


def test_eval_command_runs_and_resumes(tiny_model_dir, gsm8k_test, tmp_path):
    arguments = [str(tiny_model_dir), "--benchmark", "gsm8k", "--data", str(gsm8k_test), "--limit", "2",
                 "--format", "plain", "--max-new-tokens", "6", "--batch-size", "2", "--no-levels", "--out", str(tmp_path)]
    result = CliRunner().invoke(eval_command, arguments)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{") : result.output.rindex("}") + 1])
    assert summary["samples"] == 2 and summary["benchmark"] == "gsm8k"
    assert len((tmp_path / "samples.jsonl").read_text().splitlines()) == 2

    longer = CliRunner().invoke(eval_command, [*arguments[:5], "--limit", "3", *arguments[7:]])
    assert longer.exit_code == 0, longer.output
    assert len((tmp_path / "samples.jsonl").read_text().splitlines()) == 3


def test_eval_command_reports_bad_input(tiny_model_dir, gsm8k_test):
    result = CliRunner().invoke(eval_command, [str(tiny_model_dir), "--data", str(gsm8k_test), "--budget-forcing", "wait-2"])
    assert result.exit_code == 2
    assert "wait:N" in result.output and "--thinking r1" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(eval_command, [str(tiny_model_dir), "--data", str(gsm8k_test), "--columns", "question"])
    assert result.exit_code == 2 and "ROLE=COLUMN" in result.output
    result = CliRunner().invoke(eval_command, [str(tiny_model_dir), "--benchmark", "nope"])
    assert result.exit_code == 2 and "unknown benchmark 'nope'" in result.output


def test_eval_command_with_custom_thinking_markers(tiny_model_dir, gsm8k_test, tmp_path):
    arguments = [str(tiny_model_dir), "--data", str(gsm8k_test), "--limit", "1", "--no-levels", "--out", str(tmp_path),
                 "--think-start", "<t>", "--think-end", "</t>", "--answer-prefix", " So:", "--max-thinking-tokens", "3",
                 "--max-answer-tokens", "2", "--budget-forcing", "wait:1"]
    result = CliRunner().invoke(eval_command, arguments)
    assert result.exit_code == 0, result.output
    row = json.loads((tmp_path / "samples.jsonl").read_text())
    assert row["prompt"].endswith("<t>") and "</t> So:" in row["output"]
    assert row["thinking_tokens"] == 3 and row["tokens"] <= 5


def test_interrupted_eval_keeps_samples_and_exits_130(tiny_model_dir, tmp_path, monkeypatch):
    from sfn.eval.backends.hf import HFBackend

    data = tmp_path / "problems.jsonl"
    data.write_text("".join(json.dumps({"question": f"What is {n} + {n}?", "answer": f"{n} + {n} = {2 * n}\n#### {2 * n}"}) + "\n"
                            for n in range(3)))

    generate, calls = HFBackend.generate, []

    def interrupted_on_second_batch(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(HFBackend, "generate", interrupted_on_second_batch)
    arguments = [str(tiny_model_dir), "--data", str(data), "--format", "plain",
                 "--max-new-tokens", "4", "--batch-size", "1", "--no-levels", "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(eval_command, arguments)
    assert result.exit_code == 130, result.output
    assert "interrupted: the samples finished before the interrupt are kept in --out" in result.stderr
    assert len((tmp_path / "run" / "samples.jsonl").read_text().splitlines()) == 1
def test_eval_command_samples_and_says_what_it_chose(tiny_model_dir, gsm8k_test, tmp_path):
    arguments = [str(tiny_model_dir), "--data", str(gsm8k_test), "--limit", "2", "--samples", "2", "--temperature", "0.7",
                 "--top-p", "0.9", "--max-new-tokens", "4", "--no-levels", "--format", "raw", "--out", str(tmp_path)]
    result = CliRunner().invoke(eval_command, arguments)
    assert result.exit_code == 0, result.output
    assert "warning: floor: 0 of 2 problems solved" in result.output  # the tiny random model solves nothing
    rows = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert [(row["id"], row["sample"]) for row in rows] == [("0", 0), ("0", 1), ("1", 0), ("1", 1)]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["pass_at_k"]) == {"1", "2"} and json.loads((tmp_path / "settings.json").read_text())["do_sample"]
    assert (tmp_path / "results.json").is_file()
    refused = CliRunner().invoke(eval_command, [*arguments[:-2], "--max-new-tokens", "2000"])
    assert refused.exit_code != 0 and "--allow-long-context" in refused.output and "Traceback" not in refused.output


def test_eval_command_stops_where_a_stop_string_first_appears(tiny_model_dir, gsm8k_test, tmp_path):
    arguments = [str(tiny_model_dir), "--data", str(gsm8k_test), "--limit", "1", "--format", "raw",
                 "--max-new-tokens", "12", "--no-levels"]
    whole = CliRunner().invoke(eval_command, [*arguments, "--out", str(tmp_path / "whole")])
    assert whole.exit_code == 0, whole.output
    output = json.loads((tmp_path / "whole" / "samples.jsonl").read_text())["output"]
    marker = output[4:7]  # some text the model writes in the middle of its output
    assert len(output) > 7 and marker.strip()
    cut = CliRunner().invoke(eval_command, [*arguments, "--out", str(tmp_path / "cut"), "--stop", marker,
                                            "--stop", "never\\nwritten"])
    assert cut.exit_code == 0, cut.output
    row = json.loads((tmp_path / "cut" / "samples.jsonl").read_text())
    assert row["output"] == output[: output.index(marker)] and not row["truncated"]
    settings = json.loads((tmp_path / "cut" / "settings.json").read_text())
    assert settings["stop"] == [marker, "never\nwritten"]  # \n on the command line is a newline


def test_eval_command_reads_newlines_in_a_one_line_few_shot_template(tiny_model_dir, gsm8k_test, tmp_path):
    template = "Question: 1 + 1?\\nAnswer: 2\\n#### 2\\n\\nQuestion: {question}\\nAnswer:"
    result = CliRunner().invoke(eval_command, [str(tiny_model_dir), "--data", str(gsm8k_test), "--limit", "1",
                                               "--format", "raw", "--plain-template", template, "--max-new-tokens", "2",
                                               "--no-levels", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    prompt = json.loads((tmp_path / "samples.jsonl").read_text())["prompt"]
    assert prompt.startswith("Question: 1 + 1?\nAnswer: 2\n#### 2\n\nQuestion: ") and "\\n" not in prompt


def test_a_blank_stop_string_is_refused_before_any_work(tiny_model_dir, gsm8k_test, tmp_path):
    result = CliRunner().invoke(eval_command, [str(tiny_model_dir), "--data", str(gsm8k_test), "--stop", "",
                                               "--samples", "0", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "--stop" in result.output and "--samples" in result.output
    assert not (tmp_path / "run").exists()
