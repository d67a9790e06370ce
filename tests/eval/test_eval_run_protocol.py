"""The evaluation protocol end to end: samples per problem, pass@k/maj@k, formats, the run
directory's settings, context refusal, lm-eval's results shape, and benchmark file errors."""

import json

import pytest

from sfn.errors import SfnError, SfnErrors
from sfn.eval import evaluate
from sfn.eval.backends.base import Completion
from sfn.eval.benchmarks import get_benchmark, load_samples
from sfn.eval.stats import pass_at_k


class SeededBackend:
    """Answers depend only on the seed it is given: "18.00" (right) when the seed is odd, else 17."""

    def __init__(self, chat_template="x", context_length=None):
        self.tokenizer = type("Tok", (), {"chat_template": chat_template, "bos_token": None,
                                          "apply_chat_template": lambda self, m, **k: m[-1]["content"] + " [reply] ",
                                          "__call__": lambda self, text: {"input_ids": text.split()},
                                          "encode": lambda self, text, add_special_tokens=False: text.split(),
                                          "decode": lambda self, tokens: " ".join(tokens)})()
        self.context_length = context_length
        self.calls = []

    def generate(self, prompts, max_new_tokens, stop=(), seeds=None):
        self.calls.append((list(prompts), seeds))
        seeds = seeds or [0] * len(prompts)
        return [Completion("#### 18.00" if seed % 2 else "#### 17", 3, "eos") for seed in seeds]


@pytest.fixture
def problems(tmp_path_factory):
    # Outside the tests' run directories (tmp_path): an output may not contain an input.
    data = tmp_path_factory.mktemp("problems") / "gsm8k.jsonl"
    data.write_text("".join(json.dumps({"question": f"Q{i}?", "answer": "... #### 18"}) + "\n" for i in range(6)))
    return str(data)


def test_samples_per_problem_give_pass_and_majority_at_k(problems, tmp_path):
    result = evaluate(SeededBackend(), data=problems, samples=4, grade_levels=False, progress=False, out=str(tmp_path / "run"))
    frame, summary = result.samples, result.summary
    assert len(frame) == 24 and set(frame["sample"]) == {0, 1, 2, 3}
    assert summary["problems"] == 6 and summary["samples_per_problem"] == 4
    assert summary["accuracy"] == pytest.approx(frame["correct"].mean())
    assert set(summary["pass_at_k"]) == {"1", "2", "4"} and set(summary["maj_at_k"]) == {"1", "2", "4"}
    expected = [pass_at_k(4, int(group["correct"].sum()), 2) for _, group in frame.groupby("id")]
    assert summary["pass_at_k"]["2"]["value"] == pytest.approx(sum(expected) / 6)
    assert summary["pass_at_k"]["1"]["value"] == pytest.approx(summary["accuracy"])
    low, high = summary["pass_at_k"]["4"]["ci95"]
    assert low <= summary["pass_at_k"]["4"]["value"] <= high
    # Seeds come from (seed, problem, sample): a rerun, another batch size, gives the same samples.
    again = evaluate(SeededBackend(), data=problems, samples=4, batch_size=3, grade_levels=False, progress=False)
    assert list(again.samples["output"]) == list(frame["output"])
    other = evaluate(SeededBackend(), data=problems, samples=4, seed=1, grade_levels=False, progress=False)
    assert list(other.samples["output"]) != list(frame["output"])
    # lm-eval's shape next to sfn's summary: its strict-match compares strings, so 18.00 is wrong there.
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    metrics = results["results"]["gsm8k"]
    assert metrics["exact_match,strict-match"] == 0.0 == summary["accuracy_strict"]
    assert metrics["exact_match,flexible-extract"] == summary["accuracy_flexible_lm_eval"]
    assert results["configs"]["gsm8k"]["repeats"] == 4
    assert results["config"]["gen_kwargs"] == {"max_new_tokens": 512, "do_sample": True, "temperature": 1.0, "top_p": 1.0,
                                               "seed": 0}
    assert results["n-samples"]["gsm8k"] == {"original": 6, "effective": 6}
    # What lm-eval's own table (lm_eval.utils.make_table) reads beside the metrics.
    assert results["n-shot"] == {"gsm8k": 0} and results["higher_is_better"] == {"gsm8k": {"exact_match": True}}
    assert results["versions"]["gsm8k"].startswith("sfn ")
    assert metrics["exact_match_stderr,strict-match"] == 0.0 and metrics["alias"] == "gsm8k"
    assert summary["problems_solved"] == int(frame.groupby("id")["correct"].any().sum())


def test_greedy_with_several_samples_is_refused(problems):
    with pytest.raises(SfnErrors, match="identical outputs"):
        evaluate(SeededBackend(), data=problems, samples=4, do_sample=False)


def test_format_auto_follows_the_chat_template(problems):
    plain = evaluate(SeededBackend(chat_template=None), data=problems, limit=1, grade_levels=False, progress=False)
    assert plain.samples.loc[0, "prompt"].startswith("Question: Q0?")
    assert "no chat template, so prompts use the raw format" in plain.summary["notes"][0]
    chat = evaluate(SeededBackend(), data=problems, limit=1, grade_levels=False, progress=False)
    assert chat.samples.loc[0, "prompt"].endswith(" [reply] ")
    assert "has a chat template, so prompts use the chat format" in chat.summary["notes"][0]


def test_a_failed_first_run_does_not_block_the_corrected_one(problems, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(SfnError, match="no chat template"):
        evaluate(SeededBackend(chat_template=None), data=problems, limit=2, prompt_format="chat", out=str(out), progress=False)
    assert not (out / "settings.json").exists()
    with pytest.raises(SfnError):
        evaluate(str(tmp_path / "no-such-model"), data=problems, limit=2, out=str(out), progress=False)
    assert not (out / "settings.json").exists()
    # A settings.json without any sample (an older sfn wrote it first) does not block either.
    out.mkdir(exist_ok=True)
    (out / "settings.json").write_text(json.dumps({"model": "in-memory model", "prompt_format": "chat"}))
    done = evaluate(SeededBackend(chat_template=None), data=problems, limit=2, out=str(out), grade_levels=False, progress=False)
    assert len(done.samples) == 2
    assert json.loads((out / "settings.json").read_text())["prompt_format"] == "raw"
    # Once samples exist, other settings are refused; "plain" is the old name of raw.
    with pytest.raises(SfnError, match="max_new_tokens"):
        evaluate(SeededBackend(chat_template=None), data=problems, limit=2, out=str(out), max_new_tokens=5, progress=False)
    evaluate(SeededBackend(chat_template=None), data=problems, limit=3, prompt_format="plain", out=str(out),
             grade_levels=False, progress=False)


def test_settings_an_older_run_did_not_record_count_as_defaults(problems, tmp_path):
    evaluate(SeededBackend(), data=problems, limit=2, out=str(tmp_path), grade_levels=False, progress=False)
    settings = json.loads((tmp_path / "settings.json").read_text())
    del settings["budget_style"]
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    backend = SeededBackend()
    evaluate(backend, data=problems, limit=2, out=str(tmp_path), grade_levels=False, progress=False)
    assert backend.calls == []


def test_limit_below_a_finished_run_reports_what_was_asked(problems, tmp_path):
    evaluate(SeededBackend(), data=problems, out=str(tmp_path), grade_levels=False, progress=False)
    full = json.loads((tmp_path / "summary.json").read_text())
    part = evaluate(SeededBackend(), data=problems, limit=3, out=str(tmp_path), grade_levels=False, progress=False)
    assert part.summary["samples"] == 3 and list(part.samples["id"]) == ["0", "1", "2"]
    assert any("holds 6 samples; this summary covers the 3 asked for" in note for note in part.summary["notes"])
    assert json.loads((tmp_path / "summary.json").read_text()) == full


def test_context_length_is_refused_before_generating(problems, tmp_path):
    backend = SeededBackend(context_length=30)  # the prompts are 14 (whitespace) tokens
    with pytest.raises(SfnError, match="max_position_embeddings.*--allow-long-context") as caught:
        evaluate(backend, data=problems, max_new_tokens=17, out=str(tmp_path), progress=False)
    assert "context of 30 tokens" in str(caught.value) and "at most 16" in str(caught.value) and backend.calls == []
    assert not (tmp_path / "settings.json").exists()
    evaluate(backend, data=problems, max_new_tokens=16, grade_levels=False, progress=False)
    evaluate(backend, data=problems, max_new_tokens=17, allow_long_context=True, grade_levels=False, progress=False)


def test_s1_style_needs_only_its_thinking_budget_inside_the_context(problems):
    # s1 sets max_gen_toks to the whole context and lets vLLM stop each call there: only the
    # thinking budget must fit after the prompts, 15 tokens with the thinking start, of a 30-token context.
    settings = {"data": problems, "limit": 1, "budget_style": "s1", "grade_levels": False, "progress": False}
    done = evaluate(SeededBackend(context_length=30), max_new_tokens=30, max_thinking_tokens=15, **settings)
    assert done.samples.loc[0, "prompt"].endswith(" [reply] <|im_start|>think")
    backend = SeededBackend(context_length=30)
    with pytest.raises(SfnError) as caught:
        evaluate(backend, max_new_tokens=30, max_thinking_tokens=16, **settings)
    assert "the thinking budget (max_thinking_tokens (--max-thinking-tokens)) allows 16 more, 31 in all" in str(caught.value)
    assert "at most 15, or pass allow_long_context=True (--allow-long-context)" in str(caught.value) and backend.calls == []
    with pytest.raises(SfnError, match=r"thinking budget \(max_new_tokens \(--max-new-tokens\)\) allows 30 more"):
        evaluate(SeededBackend(context_length=30), max_new_tokens=30, **settings)


def test_floor_warning_reaches_the_summary(problems):
    result = evaluate(SeededBackend(), data=problems, grade_levels=False, progress=False)  # greedy: seed 0, all wrong
    assert result.summary["accuracy"] == 0.0
    assert any(note.startswith("floor: 0 of 6 problems solved") for note in result.summary["notes"])


def test_benchmark_rows_must_have_answers(tmp_path):
    gsm8k = get_benchmark("gsm8k")
    data = tmp_path / "bad.jsonl"
    data.write_text('{"question": "a", "answer": "#### 1"}\n{"question": "b", "answer": null}\n\n{"question": "c"}\n')
    with pytest.raises(SfnErrors) as caught:
        load_samples(gsm8k, data)
    message = str(caught.value)
    assert f"{data} line 2: no answer ('answer' is null)" in message
    assert f"{data} line 4: no answer ('answer' is missing)" in message
    csv = tmp_path / "bad.csv"
    csv.write_text("question,answer\na,#### 1\nb,\n")
    with pytest.raises(SfnErrors, match="row 2: no answer \\('answer' is empty\\)"):
        load_samples(gsm8k, csv)


def test_malformed_files_name_the_line(tmp_path):
    gsm8k = get_benchmark("gsm8k")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"question": "a", "answer": "1"}\n{"question": "b", "answer"\n')
    with pytest.raises(SfnErrors, match="broken.jsonl line 2: not valid JSON"):
        load_samples(gsm8k, broken)
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"question": "a", "answer": "1"}\n{"question": "caf\xe9", "answer": "2"}\n')
    with pytest.raises(SfnErrors, match="latin.jsonl line 2: byte 0xe9 at column 18 is not UTF-8"):
        load_samples(gsm8k, latin)
    latin_csv = tmp_path / "latin.csv"
    latin_csv.write_bytes(b"question,answer\ncaf\xe9,1\n")
    with pytest.raises(SfnError, match="latin.csv line 2: byte 0xe9"):
        load_samples(gsm8k, latin_csv)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(SfnError, match="empty.jsonl: no rows"):
        load_samples(gsm8k, empty)


def test_r1_format_has_no_system_prompt_and_opens_thinking():
    from sfn.eval.prompts import build_prompt

    class Template:
        chat_template = "t"

        def apply_chat_template(self, messages, **kwargs):
            return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    assert build_prompt("Q?", Template(), prompt_format="r1", instruction="Box it.") == "<user>Q?\n\nBox it.<assistant><think>\n"
    with pytest.raises(SfnErrors, match="no system prompt"):
        evaluate(SeededBackend(), prompt_format="r1", system_prompt="Be brief.")


@pytest.mark.slow
def test_hf_samples_do_not_depend_on_batch_size(tiny_model, tiny_tokenizer, problems):
    settings = {"data": problems, "limit": 3, "samples": 3, "temperature": 0.8, "top_p": 0.95, "max_new_tokens": 6,
                "prompt_format": "raw", "grade_levels": False, "progress": False}
    one = evaluate((tiny_model, tiny_tokenizer), batch_size=1, **settings).samples
    five = evaluate((tiny_model, tiny_tokenizer), batch_size=5, **settings).samples
    assert list(one["output"]) == list(five["output"])
    assert one.groupby("id")["output"].nunique().max() > 1  # the samples of a problem differ


def test_more_samples_add_to_a_run_and_fewer_report_a_part(problems, tmp_path):
    first = evaluate(SeededBackend(), data=problems, samples=2, out=str(tmp_path), grade_levels=False, progress=False)
    backend = SeededBackend()
    more = evaluate(backend, data=problems, samples=4, out=str(tmp_path), grade_levels=False, progress=False)
    assert sum(len(prompts) for prompts, _ in backend.calls) == 12  # only samples 2 and 3 of the 6 problems
    assert list(more.samples[more.samples["sample"] < 2]["output"]) == list(first.samples["output"])
    fewer = evaluate(SeededBackend(), data=problems, samples=2, out=str(tmp_path), grade_levels=False, progress=False)
    assert len(fewer.samples) == 12 and any("holds 24 samples" in note for note in fewer.summary["notes"])
    with pytest.raises(SfnError, match="do_sample"):  # greedy sample 0 is not sampled sample 0
        evaluate(SeededBackend(), data=problems, samples=1, out=str(tmp_path), progress=False)
