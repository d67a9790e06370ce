import json

import pytest

from sfn.errors import SfnError, SfnErrors
from sfn.eval import (
    Benchmark,
    EvalConfig,
    Grader,
    evaluate,
    register_benchmark,
    rescore,
)
from sfn.eval.benchmarks import get_benchmark, load_samples


def answers_18(prompt):
    return ["Janet", "sells", "9", "eggs", "for", "$2", "each,", "so", "she", "makes", "$18.", "<eos>"]


@pytest.fixture(scope="module")
def lexical_grader():
    return Grader(embedder=None)


def test_gsm8k_local_file(gsm8k_test, scripted, lexical_grader, tmp_path):
    result = evaluate(scripted(answers_18), benchmark="gsm8k", data=str(gsm8k_test), limit=5,
                      out=str(tmp_path / "run"), grader=lexical_grader, progress=False)
    frame, summary = result.samples, result.summary
    assert list(frame["id"]) == ["0", "1", "2", "3", "4"]
    assert frame.loc[0, "reference"] == "18" and frame.loc[0, "extracted"] == "18" and frame.loc[0, "correct"]
    assert frame.loc[0, "extracted_strict"] is None and not frame.loc[0, "correct_strict"]
    assert summary["accuracy"] == pytest.approx(0.2) and summary["accuracy_strict"] == 0.0
    low, high = summary["accuracy_ci95"]
    assert 0.0 < low < 0.2 < high < 1.0
    assert summary["mean_output_tokens"] == 12 and summary["truncated_share"] == 0.0
    assert set(frame["level"]) <= {"I", "II", "III", "IV"} and frame.loc[0, "level"] == "IV"
    assert "similarity" in frame.loc[0, "evidence"]
    lines = (tmp_path / "run" / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 5
    assert {"prompt", "output", "extracted", "correct", "tokens", "level"} <= set(json.loads(lines[0]))
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["samples"] == 5


def test_killed_run_resumes_where_it_stopped(gsm8k_test, scripted, lexical_grader, tmp_path):
    calls = []

    def dies_on_third_batch(prompt):
        calls.append(prompt)
        if len(calls) > 4:
            raise KeyboardInterrupt
        return answers_18(prompt)

    settings = {"benchmark": "gsm8k", "data": str(gsm8k_test), "limit": 6, "batch_size": 2, "out": str(tmp_path),
                "grader": lexical_grader, "progress": False}
    partial = evaluate(scripted(dies_on_third_batch), **settings)
    assert partial.summary["interrupted"] and partial.summary["samples"] == 4
    # A kill in the middle of a write leaves half a line: it is dropped on resume.
    with (tmp_path / "samples.jsonl").open("a") as handle:
        handle.write('{"id": "4", "outp')

    backend = scripted(answers_18)
    resumed = evaluate(backend, **settings)
    asked = [prompt for call in backend.calls for prompt in call[0]]
    assert len(asked) == 2 and not resumed.summary["interrupted"]
    assert list(resumed.samples["id"]) == ["0", "1", "2", "3", "4", "5"]
    assert len((tmp_path / "samples.jsonl").read_text().splitlines()) == 6

    again = scripted(answers_18)
    evaluate(again, **settings)
    assert again.calls == []  # nothing left to generate

    with pytest.raises(SfnError, match="max_new_tokens"):
        evaluate(scripted(answers_18), **{**settings, "max_new_tokens": 7})


def test_rescore_without_generating(gsm8k_test, scripted, lexical_grader, tmp_path):
    evaluate(scripted(answers_18), data=str(gsm8k_test), limit=3, out=str(tmp_path), grader=lexical_grader, progress=False)
    strict = Benchmark("gsm8k_box", {"question": "question", "answer": "answer"}, "boxed", "number")
    rescored = rescore(tmp_path, strict)
    assert not rescored.samples["correct"].any()
    assert rescored.samples.loc[0, "level"] == "III"  # same evidence, answer no longer accepted
    assert rescore(tmp_path).summary["accuracy"] == pytest.approx(1 / 3)


def test_in_memory_model_and_tokenizer(tiny_model, tiny_tokenizer, gsm8k_test, lexical_grader):
    result = evaluate((tiny_model, tiny_tokenizer), data=str(gsm8k_test), limit=3, prompt_format="plain",
                      max_new_tokens=8, batch_size=2, grader=lexical_grader, progress=False)
    assert len(result.samples) == 3
    assert (result.samples["tokens"] <= 8).all()
    assert result.samples.loc[0, "prompt"].startswith("Question: Janet")
    assert result.summary["tokens_per_second"] > 0


def test_every_settings_problem_reported_at_once(gsm8k_test, scripted):
    with pytest.raises(SfnErrors) as caught:
        evaluate(scripted(answers_18), data=str(gsm8k_test), prompt_format="html", backend="tgi",
                 budget_forcing="wait2", max_thinking_tokens=0, batch_size=0)
    message = str(caught.value)
    for fragment in ("prompt_format='html' (--format html)", "backend='tgi' (--backend tgi)", "wait:N",
                     "max_thinking_tokens (--max-thinking-tokens)", "batch_size (--batch-size)"):
        assert fragment in message
    with pytest.raises(SfnErrors, match="--thinking r1"):
        evaluate(scripted(answers_18), data=str(gsm8k_test), budget_forcing="wait:2")
    with pytest.raises(SfnError, match="unknown benchmark 'gsm9k'.*gsm8k"):
        evaluate(scripted(answers_18), benchmark="gsm9k")
    with pytest.raises(SfnError, match="unknown evaluation setting"):
        evaluate(scripted(answers_18), limt=3)


def test_missing_columns_and_mapping(tmp_path, scripted, lexical_grader):
    data = tmp_path / "problems.csv"
    data.write_text("problem,solution\nWhat is 1/2 + 1/4?,\\frac{3}{4}\nWhat is 2+3?,5\n")
    with pytest.raises(SfnError, match="missing column.*'answer'.*--columns"):
        evaluate(scripted(answers_18), benchmark="math500", data=str(data), columns={})
    backend = scripted(lambda prompt: ["\\boxed{0.75}", "<eos>"])
    result = evaluate(backend, EvalConfig(benchmark="math500", data=str(data), columns={"question": "problem", "answer": "solution"}),
                      grader=lexical_grader, progress=False)
    assert list(result.samples["correct"]) == [True, False]


def test_custom_benchmarks_registered_and_yaml(tmp_path, scripted):
    data = tmp_path / "capitals.jsonl"
    data.write_text('{"q": "Capital of France?", "a": "Paris"}\n{"q": "Capital of Peru?", "a": "Lima"}\n')
    spec = tmp_path / "capitals.yaml"
    spec.write_text("name: capitals\nquestion_field: q\nanswer_field: a\nextractor: final_answer\ncomparer: exact\ndata: capitals.jsonl\n")
    backend = scripted(lambda prompt: ["The", "final", "answer", "is", "Paris.", "<eos>"])
    result = evaluate(backend, benchmark=str(spec), grade_levels=False, progress=False)
    assert list(result.samples["correct"]) == [True, False]

    register_benchmark(Benchmark("capitals_registered", {"question": "q", "answer": "a"}, "final_answer", "exact", data=str(data)))
    assert evaluate(backend, benchmark="capitals_registered", grade_levels=False, progress=False).summary["accuracy"] == 0.5
    with pytest.raises(SfnError, match="already registered"):
        register_benchmark(Benchmark("capitals_registered", {"question": "q", "answer": "a"}))
    with pytest.raises(SfnErrors, match="unknown extractor 'boxd'"):
        register_benchmark(Benchmark("typo", {"question": "q", "answer": "a"}, extractor="boxd"))
    spec.write_text("question_field: q\nanswer: a\n")
    with pytest.raises(SfnErrors, match="unknown key 'answer'"):
        get_benchmark(str(spec))


def test_gpqa_options_shuffled_with_a_fixed_seed(tmp_path):
    rows = [{"Question": f"Question {i}?", "Correct Answer": f"right {i}", "Incorrect Answer 1": "w1",
             "Incorrect Answer 2": "w2", "Incorrect Answer 3": "w3"} for i in range(12)]
    data = tmp_path / "gpqa.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    benchmark = get_benchmark("gpqa_diamond")
    first, second = load_samples(benchmark, data), load_samples(benchmark, data)
    assert first == second
    assert len({sample.reference for sample in first}) > 1  # the right answer is not always (A)
    for index, sample in enumerate(first):
        assert f"({sample.reference}) right {index}" in sample.question


def test_hub_loading_fails_clearly_offline(scripted, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(SfnError, match="--data FILE"):
        evaluate(scripted(answers_18), benchmark="aime24", progress=False)


def test_parquet_and_jsonl_files_read_alike(tmp_path, gsm8k_test):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow", reason="Parquet needs pyarrow: a dependency of sfn")
    frame = pd.read_json(gsm8k_test, lines=True).head(4)
    frame.to_parquet(tmp_path / "gsm8k.parquet")
    benchmark = get_benchmark("gsm8k")
    assert load_samples(benchmark, tmp_path / "gsm8k.parquet") == load_samples(benchmark, gsm8k_test, limit=4)


def test_vllm_backend_errors_clearly(gsm8k_test, tiny_model, tiny_tokenizer, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(SfnError, match="needs vLLM.*--backend hf"):
        evaluate("some/model", backend="vllm", data=str(gsm8k_test), limit=1, progress=False)
    with pytest.raises(SfnError, match="pass a model path"):
        evaluate((tiny_model, tiny_tokenizer), backend="vllm", data=str(gsm8k_test), limit=1, progress=False)


def test_a_bare_loaded_model_evaluates_with_the_tokenizer_saved_beside_it(tiny_model, tiny_tokenizer, gsm8k_test,
                                                                          lexical_grader, tmp_path):
    tiny_model.save_pretrained(tmp_path / "model")
    tiny_tokenizer.save_pretrained(tmp_path / "model")
    loaded = type(tiny_model).from_pretrained(tmp_path / "model").eval()
    settings = dict(data=str(gsm8k_test), limit=2, prompt_format="plain", max_new_tokens=4, grader=lexical_grader, progress=False)
    alone, paired = evaluate(loaded, **settings), evaluate((loaded, tiny_tokenizer), **settings)
    assert alone.samples["output"].tolist() == paired.samples["output"].tolist()
    with pytest.raises(SfnError, match=r"pass \(model, tokenizer\)"):
        evaluate(tiny_model, **settings)  # built in memory: no tokenizer saved anywhere


def few_shot_continuation(prompt):
    # A base model after a few-shot prompt: its answer, then a next question of its own.
    return ["She", "makes", "$18.", "####", "18", "Question:", "Ann", "has", "5.", "####", "5", "<eos>"]


def test_stop_cuts_the_output_before_the_models_next_question(gsm8k_test, scripted, lexical_grader, tmp_path):
    settings = dict(benchmark="gsm8k", data=str(gsm8k_test), limit=2, grader=lexical_grader, progress=False,
                    prompt_format="raw", grade_levels=False)
    loose = evaluate(scripted(few_shot_continuation), **settings).samples
    assert loose.loc[0, "extracted"] == "5" and not loose.loc[0, "correct"]  # the made-up question's answer
    backend = scripted(few_shot_continuation)
    cut = evaluate(backend, stop=["Question:"], out=str(tmp_path / "run"), **settings)
    row = cut.samples.iloc[0]
    assert row["output"] == "She makes $18. #### 18 " and row["extracted"] == "18" and row["correct"]
    assert not row["truncated"] and row["tokens"] == 6
    assert all(stop == ["Question:"] for _, _, stop in backend.calls)
    assert json.loads((tmp_path / "run" / "settings.json").read_text())["stop"] == ["Question:"]
    with pytest.raises(SfnError, match="stop"):  # a resumed run must stop where the first one did
        evaluate(scripted(few_shot_continuation), stop=["####"], out=str(tmp_path / "run"), **settings)


def test_bad_stop_strings_are_refused_with_the_other_problems():
    with pytest.raises(SfnErrors) as raised:
        EvalConfig(stop=("Question:", ""), samples=0).resolved()
    assert "stop" in str(raised.value) and "samples" in str(raised.value)
    with pytest.raises(SfnErrors, match="thinking markers"):
        EvalConfig(stop=("Question:",), thinking="r1", max_thinking_tokens=8).resolved()
    with pytest.raises(SfnErrors, match="non-empty strings"):
        EvalConfig(stop="Question:").resolved()  # a bare string is not a list of them
