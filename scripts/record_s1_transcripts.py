"""Record what simplescaling/s1's own harness does in the budget-forcing cases of
tests/s1_scripted.py, for tests/eval/test_eval_budget_s1.py to hold sfn's `--budget-style s1` to.

s1's budget forcing lives in one method of its lm-evaluation-harness fork,
`VLLM._model_generate` (eval/lm-evaluation-harness/lm_eval/models/vllm_causallms.py). This script
reads that file from a checkout of s1, compiles the method (and `modify_gen_kwargs`, which it calls)
as they are, and runs them against a stand-in for a vLLM 0.6.4 engine (the version s1 pins) whose
"model" is the case's script. Nothing of s1 is copied into sfn: the file is read at run time, and
what is written is the recorded transcript (every engine call and the final outputs).

The stand-in follows vLLM 0.6.4's rules as s1's method meets them: `min_tokens` holds back end of
sequence and `stop_token_ids`; a stop token or end of sequence ends the output, is kept in
`token_ids` and its text dropped; a stop string cuts the text before it; the special tokens' text is
kept (s1 sets skip_special_tokens=False); a sequence stops once it is one token longer than
max_model_len, and a prompt longer than it is an error. The method is called as s1's
`generate_until` calls it for its AIME/MATH tasks: `until` empty, so `stop` is the EOS string.

    git clone https://github.com/simplescaling/s1 /tmp/s1
    python scripts/record_s1_transcripts.py --s1 /tmp/s1
"""

from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import json
import logging
import subprocess
import sys
import typing
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from s1_scripted import CASES, EOS, S1_START, TOKEN, S1Case  # noqa: E402

HARNESS = Path("eval/lm-evaluation-harness/lm_eval/models/vllm_causallms.py")
OUT = ROOT / "tests" / "eval" / "data" / "s1_transcripts.json"


class Vocabulary:
    """Token strings <-> ids, in order of first use."""

    def __init__(self):
        self.ids: dict[str, int] = {}
        self.tokens: list[str] = []

    def id(self, token: str) -> int:
        if token not in self.ids:
            self.ids[token] = len(self.tokens)
            self.tokens.append(token)
        return self.ids[token]

    def encode(self, text: str) -> list[int]:
        return [self.id(token) for token in TOKEN.findall(text)]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.tokens[i] for i in ids)


class SamplingParams:
    """vLLM's SamplingParams as far as s1's method uses it."""

    def __init__(self, max_tokens: int = 16, min_tokens: int = 0, stop=None, stop_token_ids=None, **others):
        self.max_tokens, self.min_tokens = max_tokens, min_tokens
        self.stop, self.stop_token_ids = list(stop or []), list(stop_token_ids or [])
        self.others = others


class Engine:
    """A vLLM 0.6.4 `LLM` whose model writes what the case's script says, one token per step."""

    def __init__(self, script, vocabulary: Vocabulary, max_model_len: int):
        self.script, self.vocabulary, self.max_model_len = script, vocabulary, max_model_len
        self.calls: list[dict] = []

    def generate(self, prompt_token_ids, sampling_params, use_tqdm=False):
        call = {"prompts": [], "max_tokens": sampling_params.max_tokens, "min_tokens": sampling_params.min_tokens,
                "stop": sampling_params.stop,
                "stop_tokens": [self.vocabulary.tokens[i] for i in sampling_params.stop_token_ids], "outputs": []}
        self.calls.append(call)
        results = []
        for ids in prompt_token_ids:
            if len(ids) > self.max_model_len:
                raise ValueError(f"prompt of {len(ids)} tokens is longer than max_model_len {self.max_model_len}")
            call["prompts"].append(self.vocabulary.decode(list(ids)))
            results.append(self._one(list(ids), sampling_params))
            output = results[-1].outputs[0]
            call["outputs"].append({"text": output.text, "tokens": len(output.token_ids), "finish_reason": output.finish_reason})
        return results

    def _one(self, prompt: list[int], params: SamplingParams):
        eos = self.vocabulary.id(EOS)
        held_back = {eos, *params.stop_token_ids}
        upcoming = self.vocabulary.encode(self.script(self.vocabulary.decode(prompt)))
        output: list[int] = []
        text, reason = "", None
        while reason is None:
            if not upcoming:
                raise AssertionError("the script ran out before the engine stopped")
            token = upcoming.pop(0)
            if len(output) < params.min_tokens and token in held_back:
                continue  # the model's next choice is the script's next token
            output.append(token)
            piece = self.vocabulary.tokens[token]
            text += piece
            if len(output) < params.min_tokens:
                continue
            if token == eos or token in params.stop_token_ids:
                text, reason = text[: len(text) - len(piece)], "stop"
            elif any(stop in text for stop in params.stop):
                text, reason = text[: min(text.index(stop) for stop in params.stop if stop in text)], "stop"
            elif len(prompt) + len(output) > self.max_model_len or len(output) == params.max_tokens:
                reason = "length"
        completion = SimpleNamespace(text=text, token_ids=output, finish_reason=reason)
        return SimpleNamespace(outputs=[completion])


def s1_functions(source: str, filename: str) -> dict[str, typing.Any]:
    """`_model_generate` and `modify_gen_kwargs` of s1's VLLM class, compiled as written."""
    tree = ast.parse(source)
    wanted = {"_model_generate", "modify_gen_kwargs"}
    methods = [node for cls in tree.body if isinstance(cls, ast.ClassDef) for node in cls.body
               if isinstance(node, ast.FunctionDef) and node.name in wanted]
    for method in methods:
        method.decorator_list = []
    namespace = {"copy": copy, "SamplingParams": SamplingParams, "eval_logger": logging.getLogger("s1"),
                 **{name: getattr(typing, name) for name in ("List", "Optional", "Dict", "Tuple", "Union")}}
    exec(compile(ast.Module(body=methods, type_ignores=[]), filename, "exec"), namespace)
    return {name: namespace[name] for name in wanted}


def record(case: S1Case, functions: dict[str, typing.Any]) -> dict:
    vocabulary = Vocabulary()
    engine = Engine(case.script, vocabulary, case.context_length)

    def tok_encode(string):
        return vocabulary.encode(string) if isinstance(string, str) else [vocabulary.encode(s) for s in string]

    harness = SimpleNamespace(model=engine, batch_size=1, data_parallel_size=1, lora_request=None,
                              tok_encode=tok_encode, modify_gen_kwargs=functions["modify_gen_kwargs"])
    kwargs = {"do_sample": False, "temperature": 0, "max_tokens_thinking": case.max_thinking_tokens,
              "thinking_n_ignore": case.waits}
    if case.wait_text is not None:
        kwargs["thinking_n_ignore_str"] = case.wait_text
    outputs = functions["_model_generate"](harness, requests=[vocabulary.encode(p) for p in case.prompts], generate=True,
                                           max_tokens=case.max_new_tokens, stop=[EOS], **kwargs)
    return {"name": case.name, "gen_kwargs": {"max_gen_toks": case.max_new_tokens, **kwargs},
            "max_model_len": case.context_length, "prompts": list(case.prompts), "calls": engine.calls,
            "outputs": [output.outputs[0].text for output in outputs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--s1", type=Path, required=True, help="a checkout of github.com/simplescaling/s1")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    harness = args.s1 / HARNESS
    source = harness.read_text()
    commit = subprocess.run(["git", "-C", str(args.s1), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    functions = s1_functions(source, str(harness))
    transcript = {"source": f"simplescaling/s1@{commit or 'unknown'}:{HARNESS}",
                  "sha256": hashlib.sha256(source.encode()).hexdigest(), "thinking_start": S1_START,
                  "cases": [record(case, functions) for case in CASES]}
    args.out.write_text(json.dumps(transcript, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {args.out} ({len(CASES)} cases)")


if __name__ == "__main__":
    main()
