"""`--budget-style s1` against transcripts of simplescaling/s1's harness: recorded by running s1's own
`_model_generate` on scripted models (scripts/record_s1_transcripts.py, tests/eval/data/
s1_transcripts.json), and derived by hand from its `thinking_n_ignore` loop."""

import json
from pathlib import Path

import pytest
from s1_scripted import CASES, EOS, TOKEN, CharModel

from sfn.eval.budget import generate_outputs
from sfn.eval.prompts import PROTOCOL_MARKERS

S1 = PROTOCOL_MARKERS["s1"]
R1 = PROTOCOL_MARKERS["r1"]
TRANSCRIPTS = json.loads((Path(__file__).parent / "data" / "s1_transcripts.json").read_text())


def test_every_case_was_recorded_with_s1s_own_start_marker():
    assert [entry["name"] for entry in TRANSCRIPTS["cases"]] == [case.name for case in CASES]
    assert TRANSCRIPTS["thinking_start"] == S1.start and TRANSCRIPTS["source"].startswith("simplescaling/s1@")


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_s1_style_equals_the_recorded_s1_transcript(case):
    recorded = next(entry for entry in TRANSCRIPTS["cases"] if entry["name"] == case.name)
    model = CharModel(case.script, context_length=case.context_length)
    generations = generate_outputs(model, [prompt + S1.start for prompt in case.prompts], max_new_tokens=case.max_new_tokens,
                                   thinking=S1, waits=case.waits, wait_text=case.wait_text or "",
                                   max_thinking_tokens=case.max_thinking_tokens, style="s1", forcing=True)
    # s1's logged output opens with the start marker it appended to the prompt; sfn's prompt ends in it.
    assert [S1.start + generation.text for generation in generations] == recorded["outputs"]
    # Every engine call: the same prompts and the same minimum, and the same token limits once vLLM
    # 0.6.4's cap (a sequence ends one token past max_model_len) is applied to s1's max_tokens.
    context = recorded["max_model_len"]
    expected = [(call["prompts"], [min(call["max_tokens"], context + 1 - len(TOKEN.findall(prompt))) for prompt in call["prompts"]],
                 call["min_tokens"]) for call in recorded["calls"]]
    assert [(prompts, limits, minimum) for prompts, limits, _, minimum in model.calls] == expected


def test_s1_budget_runs_out_after_two_waits():
    case = CASES[0]  # round 1 "ab"; round 2 tries to stop at once, then "cd"; round 3 runs on
    assert case.name == "runs_out_after_two_waits"
    model = CharModel(case.script)
    prompt = case.prompts[0] + S1.start
    [generation] = generate_outputs(model, [prompt], max_new_tokens=60, thinking=S1, waits=2,
                                    max_thinking_tokens=20, style="s1")
    # Hand-derived from s1's loop: round 1 "ab" (stopped by <|im_start|>, which is dropped) + "Wait";
    # round 2 may not stop on its first token, so "cd" + "Wait"; round 3, the last, runs to its
    # own limit (the whole budget, 20). 6 + 6 + 20 = 32 tokens are cut to the budget's 20; the cut
    # text did not end in a newline, so "\n" + "<|im_start|>answer" + "\nFinal Answer:" follow. The
    # output keeps the 32, as s1 logs it; the answer was prompted with the 20.
    thinking = "abWaitcdWaitefghijkl"
    assert generation.text == thinking + "mnopqrstuvwx" + "\n<|im_start|>answer\nFinal Answer: 42"
    assert generation.thinking_tokens == 20 and generation.waits == 2
    thinking_calls = model.calls[:3]
    assert [call[1] for call in thinking_calls] == [[20], [20], [20]]  # each round may use the whole budget
    assert all(call[2] == ["<|im_start|>"] and call[3] == 1 for call in thinking_calls)
    answer_prompt, answer_limit = model.calls[3][0][0], model.calls[3][1][0]
    assert answer_prompt == prompt + thinking + "\n<|im_start|>answer\nFinal Answer:"
    # The answer may have max_new_tokens again (s1's max_gen_toks); the model says its context nowhere.
    assert answer_limit == 60
    # 20 + "\n" 1 + "<|im_start|>answer" 7 + "\nFinal Answer:" 14, then " 42" and the end of sequence.
    assert generation.num_tokens == 42 + 4


def test_s1_without_forcing_has_no_minimum_and_no_waits():
    model = CharModel(lambda context: "\n5" + EOS if context.endswith("answer") else "xy<|im_start|>answer")
    [generation] = generate_outputs(model, ["Q" + S1.start], max_new_tokens=30, thinking=S1, style="s1", forcing=False)
    assert generation.text == "xy<|im_start|>answer\n5"
    assert model.calls[0][3] == 0


def test_r1_style_keeps_the_end_of_thinking():
    def script(context):
        if context.endswith("</think>"):
            return "\n\nThe answer is \\boxed{3}." + EOS
        if context.endswith("Wait"):
            return "</think>checked</think>"  # an immediate end is not allowed right after the wait
        return "think</think>"

    model = CharModel(script)
    [generation] = generate_outputs(model, ["Q<think>\n"], max_new_tokens=200, thinking=R1, waits=1, style="r1")
    assert generation.text == "thinkWaitchecked</think>\n\nThe answer is \\boxed{3}."
    assert generation.text.count("</think>") == 1


def test_sampled_forcing_does_not_depend_on_the_other_rows():
    class SeededCharModel(CharModel):
        def generate(self, prompts, max_new_tokens, stop=(), min_new_tokens=0, seeds=None):
            return [self._seeded(p, n, stop, min_new_tokens, seed) for p, n, seed in zip(prompts, max_new_tokens, seeds)]

        def _seeded(self, prompt, limit, stop, minimum, seed):
            self.script = lambda context: script(context, seed)
            return self._one(prompt, limit, stop, minimum)

    def script(context, seed):
        if context.endswith(("Final Answer:", "<|im_start|>answer")):
            return f" {seed % 97}" + EOS
        if context.startswith("A"):
            return "a" * 30  # runs out of budget in its first round
        return f"b{seed % 10}<|im_start|>"  # stops every round, so is forced on

    def run(prompts, seeds):
        return generate_outputs(SeededCharModel(script), prompts, max_new_tokens=80, thinking=S1, waits=2,
                                max_thinking_tokens=20, style="s1", seeds=seeds)

    together = run(["A" + S1.start, "B" + S1.start], [3, 4])
    assert together == run(["A" + S1.start], [3]) + run(["B" + S1.start], [4])
    assert together[1].waits == 2 and together[1] != run(["B" + S1.start], [5])[0]
