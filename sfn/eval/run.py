"""`evaluate(...)`: prompt, generate, score and grade a benchmark; resumable, interruptible."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sfn.errors import SfnError
from sfn.eval.benchmarks import Benchmark, Sample, get_benchmark, load_samples
from sfn.eval.budget import generate_outputs
from sfn.eval.config import EvalConfig, ResolvedConfig
from sfn.eval.grade import Grader, decide, default_grader
from sfn.eval.prompts import build_prompt
from sfn.eval.stats import summarize

SAMPLES_FILE = "samples.jsonl"
SETTINGS_FILE = "settings.json"
SUMMARY_FILE = "summary.json"


@dataclass
class EvalResult:
    """One row per sample (prompt, output, extracted, correct, tokens, level, ...) and the summary."""

    samples: pd.DataFrame
    summary: dict[str, Any]
    out_dir: Path | None = None


def evaluate(
    model: Any,
    config: EvalConfig | None = None,
    *,
    reference_model: Any = None,
    grader: Grader | None = None,
    **settings: Any,
) -> EvalResult:
    """Evaluate `model` on a benchmark.

    `model` is a model directory, `.gguf` file or hub id; an already-loaded `(model, tokenizer)`;
    or a backend object (with `.generate` and `.tokenizer`). Settings come from `config` and/or
    keyword arguments (see `EvalConfig`). `reference_model` — a `(model, tokenizer)` or path of the
    undamaged base — lets the grader measure fluency by log-likelihood. With `config.out`, finished
    samples are appended to samples.jsonl as they come, and a rerun resumes after them. Ctrl-C stops
    after keeping what is done; the summary then says `interrupted: true`.
    """
    config = (config or EvalConfig()).with_overrides(settings)
    resolved = config.resolved()
    samples = load_samples(resolved.benchmark, config.data, config.limit)
    out_dir = Path(config.out) if config.out else None
    done = _start_run(out_dir, _settings_record(config, model)) if out_dir else {}
    pending = [sample for sample in samples if sample.id not in done]

    interrupted, generated_tokens, elapsed = False, 0, 0.0
    if pending:
        backend = _make_backend(model, config)
        if config.grade_levels and grader is None:
            # The shared default grader keeps MiniLM loaded across the many calls of a sweep.
            grader = default_grader() if reference_model is None else Grader(reference=_as_loaded(reference_model, config))
        started = time.perf_counter()  # after loading: the summary's rate is generation (and grading) only
        interrupted, generated_tokens = _run_pending(backend, pending, resolved, grader, done, out_dir)
        elapsed = time.perf_counter() - started

    rows = [done[sample.id] for sample in samples if sample.id in done]
    result = _result(rows, resolved.benchmark, out_dir)
    result.summary.update(benchmark=resolved.benchmark.name, interrupted=interrupted)
    if pending:
        result.summary["generation_seconds"] = elapsed
        result.summary["tokens_per_second"] = generated_tokens / elapsed if elapsed > 0 else None
    if out_dir:
        (out_dir / SUMMARY_FILE).write_text(json.dumps(result.summary, indent=2))
    return result


def rescore(run_dir: str | os.PathLike, benchmark: str | Benchmark | None = None) -> EvalResult:
    """Re-extract and re-check the answers of a finished run (and re-decide levels from the stored
    evidence) without generating again; `benchmark` defaults to the one the run used."""
    run_dir = Path(run_dir)
    samples_path = run_dir / SAMPLES_FILE
    if not samples_path.is_file():
        raise SfnError(f"{run_dir} holds no {SAMPLES_FILE}; pass the --out directory of an evaluation")
    settings = json.loads((run_dir / SETTINGS_FILE).read_text())
    bench = get_benchmark(benchmark or settings["benchmark"])
    rows = []
    for row in _read_records(samples_path).values():
        rows.append({**row, **_score(bench, row["output"], row["reference"])})
        if row.get("evidence") is not None:
            evidence = {**row["evidence"], "correct": rows[-1]["correct"]}
            rows[-1]["level"], rows[-1]["level_reason"] = decide(evidence)
            rows[-1]["evidence"] = evidence
    return _result(rows, bench, run_dir)


def _run_pending(backend, pending: list[Sample], resolved: ResolvedConfig, grader, done: dict, out_dir) -> tuple[bool, int]:
    from tqdm.auto import tqdm

    config = resolved.config
    total = len(pending) + len(done)
    correct = sum(bool(row["correct"]) for row in done.values())
    tokens = 0
    bar = tqdm(total=total, initial=len(done), desc=f"eval {resolved.benchmark.name}", disable=not config.progress)
    try:
        for start in range(0, len(pending), config.batch_size):
            chunk = pending[start : start + config.batch_size]
            prompts = [_prompt(sample, backend.tokenizer, resolved) for sample in chunk]
            generations = generate_outputs(
                backend,
                prompts,
                max_new_tokens=config.max_new_tokens,
                thinking=resolved.thinking,
                waits=resolved.waits,
                wait_text=config.wait_text,
                max_thinking_tokens=config.max_thinking_tokens,
                max_answer_tokens=config.max_answer_tokens,
            )
            for sample, prompt, generation in zip(chunk, prompts, generations):
                row = _record(sample, prompt, generation, resolved.benchmark, grader)
                done[sample.id] = row
                correct += bool(row["correct"])
                tokens += generation.num_tokens
                if out_dir:
                    _append_record(out_dir / SAMPLES_FILE, row)
            bar.update(len(chunk))
            bar.set_postfix(accuracy=f"{correct / len(done):.3f}")
    except KeyboardInterrupt:
        return True, tokens
    finally:
        bar.close()
    return False, tokens


def _prompt(sample: Sample, tokenizer: Any, resolved: ResolvedConfig) -> str:
    config = resolved.config
    return build_prompt(
        sample.question,
        tokenizer,
        prompt_format=config.prompt_format,
        instruction=resolved.instruction,
        plain_template=config.plain_template,
        system_prompt=config.system_prompt,
        thinking=resolved.thinking,
    )


def _score(benchmark: Benchmark, output: str, reference: str) -> dict[str, Any]:
    extracted = benchmark.extract(output)
    scores: dict[str, Any] = {"extracted": extracted, "correct": benchmark.is_correct(extracted, reference)}
    for name, value in benchmark.extract_extra(output).items():
        scores[f"extracted_{name}"] = value
        scores[f"correct_{name}"] = benchmark.is_correct(value, reference)
    return scores


def _record(sample: Sample, prompt: str, generation, benchmark: Benchmark, grader: Grader | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": sample.id,
        "question": sample.question,
        "prompt": prompt,
        "output": generation.text,
        "reference": sample.reference,
        **_score(benchmark, generation.text, sample.reference),
        "tokens": generation.num_tokens,
        "thinking_tokens": generation.thinking_tokens,
        "waits": generation.waits,
        "truncated": generation.truncated,
    }
    if grader is not None:
        graded = grader.grade(sample.question, generation.text, correct=row["correct"])
        row.update(level=graded.level, level_reason=graded.reason, evidence=graded.evidence)
    else:
        row.update(level=None, level_reason=None, evidence=None)
    return row


def _result(rows: list[dict[str, Any]], benchmark: Benchmark, out_dir: Path | None) -> EvalResult:
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=["id", "correct", "tokens", "truncated", "level"])
    return EvalResult(frame, summarize(frame, list(benchmark.extra_extractors)), out_dir)


def _settings_record(config: EvalConfig, model: Any) -> dict[str, Any]:
    source = str(model) if isinstance(model, (str, os.PathLike)) else "in-memory model"
    return {"model": source, **config.output_settings()}


def _start_run(out_dir: Path, settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Create the run directory, or check that an existing one used the same settings; the rows done."""
    out_dir.mkdir(parents=True, exist_ok=True)
    settings_path = out_dir / SETTINGS_FILE
    settings = json.loads(json.dumps(settings))  # as it will read back (tuples become lists)
    if settings_path.is_file():
        previous = json.loads(settings_path.read_text())
        differing = sorted(key for key in set(previous) | set(settings) if previous.get(key) != settings.get(key))
        if differing:
            details = ", ".join(f"{key}: {previous.get(key)!r} then, {settings.get(key)!r} now" for key in differing)
            raise SfnError(f"{out_dir} holds a run with other settings ({details}); pass another --out or delete it")
    else:
        settings_path.write_text(json.dumps(settings, indent=2))
    samples_path = out_dir / SAMPLES_FILE
    return _read_records(samples_path) if samples_path.is_file() else {}


def _read_records(path: Path) -> dict[str, dict[str, Any]]:
    """Rows of samples.jsonl; a last line cut off by a kill is dropped and the file repaired."""
    rows: dict[str, dict[str, Any]] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if number != len(lines) - 1:
                raise SfnError(f"{path}: line {number + 1} is not JSON; the file is damaged") from None
            path.write_text("".join(text + "\n" for text in lines[:-1]), encoding="utf-8")
            break
        rows[row["id"]] = row
    return rows


def _append_record(path: Path, row: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        handle.flush()


def _as_loaded(model: Any, config: EvalConfig) -> tuple[Any, Any]:
    if isinstance(model, (str, os.PathLike)):
        from sfn.io.load_model import load_model

        return load_model(model, device=config.device)
    return model


def _make_backend(model: Any, config: EvalConfig):
    if hasattr(model, "generate") and hasattr(model, "tokenizer") and not isinstance(model, tuple):
        return model
    sampling = {"do_sample": config.do_sample, "temperature": config.temperature, "top_p": config.top_p, "seed": config.seed}
    if config.backend == "vllm":
        if not isinstance(model, (str, os.PathLike)):
            raise SfnError("--backend vllm loads the model itself: pass a model path or hub id, not a loaded model")
        from sfn.eval.backends.vllm import VLLMBackend

        return VLLMBackend(str(model), engine_args=config.backend_args, **sampling)
    from sfn.eval.backends.hf import HFBackend

    loaded, tokenizer = _as_loaded(model, config)
    if tokenizer is None:
        raise SfnError("evaluation needs the model's tokenizer; pass (model, tokenizer)")
    return HFBackend(loaded, tokenizer, batch_size=config.batch_size, **sampling)
