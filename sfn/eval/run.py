"""`evaluate(...)`: prompt, generate, score and grade a benchmark; resumable, interruptible."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sfn.errors import SfnError, argument
from sfn.eval.benchmarks import Benchmark, Sample, get_benchmark, load_samples
from sfn.eval.budget import derive_seed, generate_outputs
from sfn.eval.config import EvalConfig, ResolvedConfig
from sfn.eval.grade import Grader, decide, default_grader
from sfn.eval.interop import LM_EVAL_FILE, write_lm_eval_results
from sfn.eval.prompts import build_prompt, resolve_format
from sfn.eval.score import score_output
from sfn.eval.stats import summarize
from sfn.io.full_disk import one_line_when_full, undo_new_entries
from sfn.io.guard import guard_output
from sfn.settings import refuse_other_settings

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

    `model` is a model directory, `.gguf` file or hub id; an already-loaded `(model, tokenizer)`; a
    loaded model alone (its tokenizer read from the directory it was loaded from); or a backend object (with `.generate` and `.tokenizer`). Settings come from `config` and/or
    keyword arguments (see `EvalConfig`). `reference_model` — a `(model, tokenizer)` or path of the
    undamaged base — lets the grader measure fluency by log-likelihood. With `config.out`, finished
    samples are appended to samples.jsonl as they come, and a rerun resumes after them; settings.json
    is written only once the model, the grader and the prompts are ready, so a run that fails before
    its first sample never blocks the corrected one. Ctrl-C stops after keeping what is done; the
    summary then says `interrupted: true`. Messages (the format "auto" chose, a --limit over a
    larger run, the floor warning) are in `summary["notes"]`.
    """
    config = (config or EvalConfig()).with_overrides(settings)
    resolved = config.resolved()
    samples = load_samples(resolved.benchmark, config.data, config.limit)
    jobs = [(sample, index) for sample in samples for index in range(config.samples)]
    out_dir = Path(config.out) if config.out else None
    if out_dir:
        read = [source for source in (model, config.data, reference_model) if isinstance(source, (str, os.PathLike))]
        guard_output(out_dir, inputs=read, replace=False)
    record = _settings_record(config, model)
    if config.grade_levels and grader is not None:  # a given grader is checked before loading the model, too
        record["grader"] = grader.configuration()
    previous, done = _read_run(out_dir) if out_dir else (None, {})
    if previous is not None and done:
        _check_same_settings(out_dir, previous, record, check_format=config.prompt_format != "auto")
    pending = [job for job in jobs if _key(job[0].id, job[1]) not in done]
    notes: list[str] = []

    interrupted, generated_tokens, elapsed = False, 0, 0.0
    if pending:
        backend = _make_backend(model, config)
        if config.grade_levels and grader is None:
            # The shared default grader keeps MiniLM loaded across the many calls of a sweep.
            grader = default_grader() if reference_model is None else Grader(reference=_as_loaded(reference_model, config))
        # The grader's configuration (embedder, word list, thresholds) is a setting: resuming under another is refused.
        record["grader"] = grader.configuration() if config.grade_levels else None
        prompt_format = resolve_format(config.prompt_format, backend.tokenizer)
        if config.prompt_format == "auto":
            why = "the tokenizer has a chat template" if prompt_format == "chat" else "the tokenizer has no chat template"
            notes.append(f"--format auto: {why}, so prompts use the {prompt_format} format")
        prompts = {sample.id: _prompt(sample, backend.tokenizer, resolved) for sample, _ in pending}
        if not config.allow_long_context:
            _check_context(backend, prompts, resolved)
        record["prompt_format"] = prompt_format
        if out_dir:
            if previous is not None and done:
                _check_same_settings(out_dir, previous, record, check_format=True)
            with one_line_when_full(out_dir / SETTINGS_FILE, undo=undo_new_entries(out_dir)):
                out_dir.mkdir(parents=True, exist_ok=True)
                (out_dir / SETTINGS_FILE).write_text(json.dumps(record, indent=2))
        started = time.perf_counter()  # after loading: the summary's rate is generation (and grading) only
        interrupted, generated_tokens = _run_pending(backend, pending, prompts, resolved, grader, done, out_dir)
        elapsed = time.perf_counter() - started

    elif previous is not None:
        record["prompt_format"] = previous.get("prompt_format", record["prompt_format"])  # as the run resolved it
        record["grader"] = previous.get("grader")

    keys = [_key(sample.id, index) for sample, index in jobs]
    rows = [done[key] for key in keys if key in done]
    result = _result(rows, resolved.benchmark, out_dir)
    result.summary.update(benchmark=resolved.benchmark.name, interrupted=interrupted)
    if pending:
        result.summary["generation_seconds"] = elapsed
        result.summary["tokens_per_second"] = generated_tokens / elapsed if elapsed > 0 else None
    whole_run = len(done) == len(rows)
    if not whole_run:
        notes.append(f"{out_dir} holds {len(done)} samples; this summary covers the {len(rows)} asked for "
                     f"(--limit {config.limit}, --samples {config.samples}); its summary.json still describes all of them")
    if result.summary.get("floor_warning"):
        notes.append(result.summary["floor_warning"])
    result.summary["notes"] = notes
    if out_dir and whole_run and rows:
        kept = f"the {len(rows)} samples are kept; rerun the same command once there is room to write the summaries"
        with one_line_when_full(out_dir / SUMMARY_FILE, kept, undo=undo_new_entries(out_dir)):
            (out_dir / SUMMARY_FILE).write_text(json.dumps(result.summary, indent=2))
            write_lm_eval_results(out_dir / LM_EVAL_FILE, result.summary, resolved.benchmark.name, record)
    return result


def rescore(run_dir: str | os.PathLike, benchmark: str | Benchmark | None = None) -> EvalResult:
    """Re-extract and re-check the answers of a finished run (and re-decide levels from the stored
    evidence) without generating again; `benchmark` defaults to the one the run used."""
    run_dir = Path(run_dir)
    samples_path = run_dir / SAMPLES_FILE
    if not samples_path.is_file():
        raise SfnError(f"{run_dir} holds no {SAMPLES_FILE}; pass the output directory of an evaluation ({argument('out')} of evaluate)")
    settings = json.loads((run_dir / SETTINGS_FILE).read_text())
    bench = get_benchmark(benchmark or settings["benchmark"])
    rows = []
    for row in _read_records(samples_path).values():
        rows.append({**row, **score_output(bench, row["output"], row["reference"])})
        if row.get("evidence") is not None:
            evidence = {**row["evidence"], "correct": rows[-1]["correct"]}
            rows[-1]["level"], rows[-1]["level_reason"] = decide(evidence)
            rows[-1]["evidence"] = evidence
    return _result(rows, bench, run_dir)


def _run_pending(backend, pending: list[tuple[Sample, int]], prompts: dict[str, str], resolved: ResolvedConfig,
                 grader, done: dict, out_dir) -> tuple[bool, int]:
    from tqdm.auto import tqdm

    config = resolved.config
    total = len(pending) + len(done)
    correct = sum(bool(row["correct"]) for row in done.values())
    tokens = 0
    bar = tqdm(total=total, initial=len(done), desc=f"eval {resolved.benchmark.name}", disable=not config.progress)
    try:
        for start in range(0, len(pending), config.batch_size):
            chunk = pending[start : start + config.batch_size]
            # One generator seed per (run seed, problem, sample): the same outputs whatever the batching.
            seeds = [derive_seed(config.seed, sample.id, index) for sample, index in chunk] if config.sampling else None
            generations = generate_outputs(
                backend,
                [prompts[sample.id] for sample, _ in chunk],
                max_new_tokens=config.max_new_tokens,
                thinking=resolved.thinking,
                waits=resolved.waits,
                wait_text=config.wait_text,
                max_thinking_tokens=config.max_thinking_tokens,
                max_answer_tokens=config.max_answer_tokens,
                style=config.budget_style,
                forcing=config.budget_forcing not in (None, "none"),
                seeds=seeds,
                stop=config.stop,
            )
            for (sample, index), generation in zip(chunk, generations):
                row = _record(sample, index, prompts[sample.id], generation, resolved.benchmark, grader)
                done[_key(sample.id, index)] = row
                correct += bool(row["correct"])
                tokens += generation.num_tokens
                if out_dir:
                    kept = (f"the {len(done) - 1} samples before it are kept; rerun the same command once there "
                            "is room, and it resumes after them")
                    with one_line_when_full(out_dir / SAMPLES_FILE, kept):
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


def _check_context(backend: Any, prompts: dict[str, str], resolved: ResolvedConfig) -> None:
    """Refuse, before generating, prompts whose generation budget runs past the model's context."""
    limit = getattr(backend, "context_length", None)
    if not limit:
        return
    config = resolved.config
    thinking = min(config.max_thinking_tokens or config.max_new_tokens, config.max_new_tokens)
    if resolved.thinking is None:
        budget, asked = config.max_new_tokens, argument("max_new_tokens")
    elif config.budget_style == "sfn":
        budget = thinking + config.max_answer_tokens
        asked = f"the thinking budget ({_thinking_budget_names(config)}) plus {argument('max_answer_tokens')}"
    else:
        # s1's protocol stops every call at the model's context, as its vLLM does (s1 sets max_gen_toks
        # to the whole context): only the thinking budget has to fit after the prompt.
        budget, asked = thinking, f"the thinking budget ({_thinking_budget_names(config)})"
    encode = getattr(backend, "encode", None) or (lambda text: backend.tokenizer(text)["input_ids"])
    longest_id, longest = max(((sample_id, len(encode(prompt))) for sample_id, prompt in prompts.items()),
                              key=lambda item: item[1])
    if longest + budget > limit:
        raise SfnError(
            f"sample {longest_id!r}: its prompt has {longest} tokens and {asked} allows {budget} more, {longest + budget} "
            f"in all, past the model's context of {limit} tokens (max_position_embeddings in its config.json). Lower "
            f"{asked} to at most {max(limit - longest, 0)}, or pass {argument('allow_long_context', True)} to generate past "
            "the trained context anyway (outputs there are usually degraded); nothing was generated"
        )


def _thinking_budget_names(config: EvalConfig) -> str:
    if config.max_thinking_tokens is not None and config.max_thinking_tokens < config.max_new_tokens:
        return argument("max_thinking_tokens")
    return argument("max_new_tokens")


def _record(sample: Sample, index: int, prompt: str, generation, benchmark: Benchmark, grader: Grader | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": sample.id,
        "sample": index,
        "question": sample.question,
        "prompt": prompt,
        "output": generation.text,
        "reference": sample.reference,
        **score_output(benchmark, generation.text, sample.reference),
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
    same = lambda left, right: benchmark.is_correct(left, right)  # noqa: E731 - answers agree as the benchmark compares them
    return EvalResult(frame, summarize(frame, list(benchmark.extra_extractors), same), out_dir)


def _settings_record(config: EvalConfig, model: Any) -> dict[str, Any]:
    source = str(model) if isinstance(model, (str, os.PathLike)) else "in-memory model"
    return {"model": source, **config.output_settings()}


def _key(sample_id: str, index: int) -> tuple[str, int]:
    return (str(sample_id), int(index))


def _read_run(out_dir: Path) -> tuple[dict[str, Any] | None, dict[tuple[str, int], dict[str, Any]]]:
    """The settings of an earlier run in `out_dir` (None if there is none) and its finished rows."""
    settings_path, samples_path = out_dir / SETTINGS_FILE, out_dir / SAMPLES_FILE
    previous = json.loads(settings_path.read_text()) if settings_path.is_file() else None
    return previous, _read_records(samples_path) if samples_path.is_file() else {}


def _check_same_settings(out_dir: Path, previous: dict[str, Any], settings: dict[str, Any], *, check_format: bool) -> None:
    """Refuse to resume a run made with other output-changing settings. A setting the earlier run did
    not record (an older sfn) counts as its default; `check_format` False skips prompt_format while
    "auto" is not resolved yet."""
    settings = json.loads(json.dumps(settings))  # as it will read back (tuples become lists)
    defaults = json.loads(json.dumps(_settings_record(EvalConfig(), settings.get("model", ""))))
    # Before loading, "auto" is not resolved yet and the default grader not built: those are checked after.
    skipped = set() if check_format else {"prompt_format"}
    if "grader" not in settings:
        skipped.add("grader")

    def value(record: dict[str, Any], key: str) -> Any:
        found = record.get(key, defaults.get(key))
        return "raw" if key == "prompt_format" and found == "plain" else found

    differing = [key for key in (set(previous) | set(settings)) - skipped if value(previous, key) != value(settings, key)]
    refuse_other_settings(out_dir, previous, settings, differing)


def _read_records(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
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
        rows[_key(row["id"], row.get("sample", 0))] = row
    return rows


def _append_record(path: Path, row: dict[str, Any]) -> None:
    """Append one line, unbuffered: a failed write (a full disk) is cut back off, so no torn line stays
    behind and the samples before it remain readable for the resume."""
    data = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
    handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        end = os.lseek(handle, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(handle, view):]
        except OSError:
            os.ftruncate(handle, end)
            raise
    finally:
        os.close(handle)


def _as_loaded(model: Any, config: EvalConfig) -> tuple[Any, Any]:
    if isinstance(model, (str, os.PathLike)):
        from sfn.io.load_model import load_model

        return load_model(model, device=config.device, allow_pickle=config.allow_pickle)
    import torch

    if isinstance(model, torch.nn.Module):
        return model, _tokenizer_beside(model)
    return model


def _tokenizer_beside(model: Any) -> Any:
    """The tokenizer saved where a bare loaded model came from, or None when there is none."""
    where = str(getattr(model, "name_or_path", "") or "")
    directory = Path(where).expanduser()
    if not (where and directory.is_dir() and any(directory.glob("tokenizer*"))):
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(directory)


def _make_backend(model: Any, config: EvalConfig):
    if hasattr(model, "generate") and hasattr(model, "tokenizer") and not isinstance(model, tuple):
        return model
    sampling = {"do_sample": config.sampling, "temperature": config.temperature, "top_p": config.top_p, "seed": config.seed}
    if config.backend == "vllm":
        if not isinstance(model, (str, os.PathLike)):
            raise SfnError(f"{argument('backend', 'vllm')} loads the model itself: pass a model path or hub id, not a loaded model")
        from sfn.eval.backends.vllm import VLLMBackend

        return VLLMBackend(str(model), engine_args=config.backend_args, **sampling)
    from sfn.eval.backends.hf import HFBackend

    loaded, tokenizer = _as_loaded(model, config)
    if tokenizer is None:
        raise SfnError("evaluation needs the model's tokenizer, and none is saved where the model came from; "
                       "pass (model, tokenizer), as sfn.load_model returns them")
    return HFBackend(loaded, tokenizer, batch_size=config.batch_size, **sampling)
