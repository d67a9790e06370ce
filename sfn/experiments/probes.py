"""Probe texts for the maps: prompts with the answer text a model is scored on, token by token.

A probe is a list of (prompt, text) pairs. The built-in ones ship prompts only and take their texts
from a model's own greedy answers, generated once and cached in the map's folder: `math` from R (does
the variant think R's solutions likely?) and `conversation` from B (does it still talk like B?). A JSONL
file of {"prompt", "text"} objects is a probe as it stands.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from sfn.errors import SfnError, SfnErrors
from sfn.eval.backends.hf import HFBackend, encode_prompt
from sfn.eval.benchmarks import read_jsonl
from sfn.eval.prompts import build_prompt

# name -> whose greedy answers are the texts
BUILT_IN_PROBES = {"math": "tuned", "conversation": "base"}
PROBE_INSTRUCTIONS = {"math": "Solve the problem step by step and give the final answer.", "conversation": ""}


@dataclass(frozen=True)
class ProbeSequence:
    prompt_ids: list[int]
    text_ids: list[int]  # the answer tokens the divergence is measured on


@dataclass
class Probe:
    name: str
    sequences: list[ProbeSequence]
    source: str  # where the texts came from, for the summary

    @property
    def tokens(self) -> int:
        return sum(len(s.text_ids) for s in self.sequences)


def built_in_prompts(name: str) -> list[str]:
    text = resources.files("sfn.experiments").joinpath("probe_sets", f"{name}.jsonl").read_text(encoding="utf-8")
    return [json.loads(line)["prompt"] for line in text.splitlines() if line.strip()]


def read_probe_file(path: str | Path) -> list[dict[str, str]]:
    """The {prompt, text} rows of a probe file; every bad row is reported at once."""
    path = Path(path)
    if not path.is_file():
        raise SfnError(f"--probe {path}: no such file; give 'math', 'conversation' or a JSONL file of {{prompt, text}} objects")
    rows, problems = [], []
    for where, row in read_jsonl(path):
        missing = [key for key in ("prompt", "text") if not isinstance(row.get(key), str) or not row[key]]
        if missing:
            problems.append(f"{where}: needs non-empty strings {' and '.join(repr(key) for key in missing)}")
        else:
            rows.append({"prompt": row["prompt"], "text": row["text"]})
    if problems:
        raise SfnErrors(problems, f"cannot use {path} as a probe")
    if not rows:
        raise SfnError(f"{path}: the probe file holds no rows")
    return rows


def check_probe_names(probes: list[str]) -> list[str]:
    """Problems with the `--probe` values, before any model is loaded."""
    problems = []
    for probe in probes:
        if probe not in BUILT_IN_PROBES and not Path(probe).is_file():
            problems.append(f"--probe {probe!r}: neither a built-in probe ({', '.join(BUILT_IN_PROBES)}) nor a JSONL file")
    if not probes:
        problems.append("--probe: give at least one probe")
    return problems


def build_probe(
    spec: str,
    tokenizer: Any,
    models: dict[str, Any],
    *,
    prompt_format: str,
    max_new_tokens: int,
    cache_dir: Path | None,
    limit: int | None = None,
) -> Probe:
    """The probe named by `spec`: a built-in name (texts generated greedily by `models[whose]`, cached in
    `cache_dir`) or a JSONL file."""
    if spec in BUILT_IN_PROBES:
        whose = BUILT_IN_PROBES[spec]
        questions = built_in_prompts(spec)[:limit]
        prompts = [build_prompt(q, tokenizer, prompt_format=prompt_format, instruction=PROBE_INSTRUCTIONS[spec]) for q in questions]
        rows = _generated(spec, prompts, models[whose], tokenizer, max_new_tokens, cache_dir)
        source = f"greedy answers of {whose} ({len(rows)} built-in {spec} prompts, at most {max_new_tokens} tokens)"
    else:
        rows = read_probe_file(spec)[:limit]
        source = f"{spec} ({len(rows)} rows)"
    sequences = []
    for row in rows:
        text_ids = tokenizer(row["text"], add_special_tokens=False)["input_ids"]
        if text_ids:
            sequences.append(ProbeSequence(encode_prompt(tokenizer, row["prompt"]), text_ids))
    if not sequences:
        raise SfnError(f"probe {spec}: every text is empty, so there is nothing to measure")
    return Probe(Path(spec).stem if spec not in BUILT_IN_PROBES else spec, sequences, source)


def _generated(name: str, prompts: list[str], model: Any, tokenizer: Any, max_new_tokens: int, cache_dir: Path | None) -> list[dict[str, str]]:
    """Greedy answers to `prompts`, read from the cache when the same model, prompts and limit made them."""
    key = hashlib.sha256(json.dumps([str(getattr(model, "name_or_path", "")), prompts, max_new_tokens]).encode()).hexdigest()[:12]
    cached = cache_dir / f"{name}-{key}.jsonl" if cache_dir else None
    if cached is not None and cached.is_file():
        return [json.loads(line) for line in cached.read_text(encoding="utf-8").splitlines() if line.strip()]
    backend = HFBackend(model, tokenizer, batch_size=8)
    completions = backend.generate(prompts, [max_new_tokens] * len(prompts))
    rows = [{"prompt": prompt, "text": completion.text} for prompt, completion in zip(prompts, completions)]
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return rows
