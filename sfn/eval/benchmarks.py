"""Benchmarks: what the questions are, where they come from, and how answers are scored.

A `Benchmark` turns rows (from the Hugging Face hub or a local JSONL/CSV/Parquet file) into
`Sample`s. Built-ins: gsm8k, math500, aime24, aime25, gpqa_diamond. Custom ones are registered
with `register_benchmark(Benchmark(...))` (or a subclass overriding `make_sample`), or written as a
YAML spec and passed by path.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sfn.errors import SfnError, SfnErrors, argument
from sfn.eval.answers import COMPARERS, EXTRACTORS, Comparer, Extractor

BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
CHOICE_INSTRUCTION = (
    "Please reason step by step, and put the letter of your final answer within \\boxed{}."
)
CHOICE_LETTERS = "ABCD"


@dataclass(frozen=True)
class Sample:
    """One question ready for prompting; `reference` is the answer a correct output must match."""

    id: str
    question: str
    reference: str


@dataclass(frozen=True)
class HubSource:
    dataset: str
    split: str
    config: str | None = None


@dataclass
class Benchmark:
    """How to read one benchmark's rows and score outputs on it.

    `fields` maps roles to column names: `question`, `answer`, and for multiple choice
    `distractors` (a list of columns holding wrong options, shuffled in with the answer).
    `extractor`/`comparer` decide correctness; `extra_extractors` are also reported
    (e.g. GSM8K's strict `#### N` next to the flexible last number), each checked with its
    `extra_comparers` entry, else with `comparer`.
    """

    name: str
    fields: dict[str, Any]
    extractor: str | Extractor = "math"
    comparer: str | Comparer = "math"
    extra_extractors: dict[str, str | Extractor] = field(default_factory=dict)
    extra_comparers: dict[str, str | Comparer] = field(default_factory=dict)
    instruction: str = BOXED_INSTRUCTION
    hub: HubSource | None = None
    data: str | None = None
    reference_parser: Callable[[str], str] | None = None
    shuffle_seed: int = 0

    def extract(self, text: str) -> str | None:
        return _resolve(self.extractor, EXTRACTORS)(text)

    def extract_extra(self, text: str) -> dict[str, str | None]:
        return {name: _resolve(ex, EXTRACTORS)(text) for name, ex in self.extra_extractors.items()}

    def is_correct(self, extracted: str | None, reference: str, metric: str | None = None) -> bool:
        """Whether `extracted` matches `reference`; `metric` names an extra extractor whose comparer decides."""
        comparer = self.extra_comparers.get(metric, self.comparer) if metric else self.comparer
        return extracted is not None and _resolve(comparer, COMPARERS)(extracted, reference)

    def required_columns(self) -> list[str]:
        columns = [self.fields["question"], self.fields["answer"]]
        return columns + list(self.fields.get("distractors", []))

    def make_sample(self, row: dict[str, Any], index: int) -> Sample:
        question = str(row[self.fields["question"]]).strip()
        answer = str(row[self.fields["answer"]]).strip()
        reference = self.reference_parser(answer) if self.reference_parser else answer
        sample_id = str(row.get("id", index))
        distractors = [str(row[column]).strip() for column in self.fields.get("distractors", [])]
        if not distractors:
            return Sample(sample_id, question, reference)
        options = [answer, *distractors]
        # Seeded per question, so the order is fixed across runs and independent of --limit.
        digest = hashlib.sha256(f"{self.shuffle_seed}:{question}".encode()).hexdigest()
        random.Random(int(digest[:16], 16)).shuffle(options)
        lines = [f"({letter}) {option}" for letter, option in zip(CHOICE_LETTERS, options)]
        return Sample(sample_id, question + "\n\n" + "\n".join(lines), CHOICE_LETTERS[options.index(answer)])

    def validate(self) -> list[str]:
        problems = []
        for role in ("question", "answer"):
            if not self.fields.get(role):
                problems.append(f"benchmark {self.name!r}: no column given for {role!r} (fields: {{{role!r}: 'column'}})")
        for kind, value, table in (("extractor", self.extractor, EXTRACTORS), ("comparer", self.comparer, COMPARERS)):
            if isinstance(value, str) and value not in table:
                problems.append(f"benchmark {self.name!r}: unknown {kind} {value!r}; choose one of {', '.join(table)}")
        for name, value in self.extra_extractors.items():
            if isinstance(value, str) and value not in EXTRACTORS:
                problems.append(f"benchmark {self.name!r}: unknown extractor {value!r} for {name!r}")
        for name, value in self.extra_comparers.items():
            if name not in self.extra_extractors:
                problems.append(f"benchmark {self.name!r}: comparer for {name!r}, which is no extra extractor")
            if isinstance(value, str) and value not in COMPARERS:
                problems.append(f"benchmark {self.name!r}: unknown comparer {value!r} for {name!r}")
        return problems


def _is_null(value: Any) -> bool:
    # pandas reads a missing value as None or NaN; str() of either is no answer ("None", "nan").
    return value is None or (isinstance(value, float) and math.isnan(value))


def _resolve(value, table: dict):
    return table[value] if isinstance(value, str) else value


def gsm8k_reference(answer: str) -> str:
    """GSM8K solutions end in '#### N'; the reference is N without separators."""
    from sfn.eval.answers import normalize_number

    return normalize_number(answer.rsplit("####", 1)[-1])


_REGISTRY: dict[str, Benchmark] = {}
# Built-in benchmarks defined in other sfn packages, by name: "module:function" returning the
# Benchmark, imported the first time the name is asked for. A name, not an import, so that those
# packages may import sfn.eval and sfn.eval never imports them back.
LAZY_BUILTINS = {"organism-math": "sfn.organism.benchmark:organism_math"}


def register_benchmark(benchmark: Benchmark, *, replace_existing: bool = False) -> Benchmark:
    """Make `benchmark` available by name to `evaluate(...)` and `sfn eval --benchmark`."""
    problems = benchmark.validate()
    if problems:
        raise SfnErrors(problems, f"cannot register benchmark {benchmark.name!r}")
    if (benchmark.name in _REGISTRY or benchmark.name in LAZY_BUILTINS) and not replace_existing:
        raise SfnError(f"a benchmark named {benchmark.name!r} is already registered; pass replace_existing=True")
    _REGISTRY[benchmark.name] = benchmark
    return benchmark


def registered_benchmarks() -> list[str]:
    return sorted({*_REGISTRY, *LAZY_BUILTINS})


for _builtin in (
    Benchmark(
        "gsm8k",
        {"question": "question", "answer": "answer"},
        extractor="last_number",
        comparer="number",
        # `strict` and `flexible_lm_eval` are lm-evaluation-harness's strict-match and
        # flexible-extract exactly (exact string match); `sfn_strict` is sfn's own `#### N` (last
        # one, numeric comparison). The headline `accuracy` compares the last number numerically.
        extra_extractors={"strict": "lm_eval_strict", "sfn_strict": "gsm8k_strict", "flexible_lm_eval": "lm_eval_flexible"},
        extra_comparers={"strict": "lm_eval_exact", "flexible_lm_eval": "lm_eval_exact"},
        hub=HubSource("openai/gsm8k", "test", "main"),
        reference_parser=gsm8k_reference,
    ),
    Benchmark("math500", {"question": "problem", "answer": "answer"}, hub=HubSource("HuggingFaceH4/MATH-500", "test")),
    Benchmark(
        "aime24", {"question": "problem", "answer": "answer"}, "integer", "integer",
        hub=HubSource("HuggingFaceH4/aime_2024", "train"),
    ),
    Benchmark(
        "aime25", {"question": "problem", "answer": "answer"}, "integer", "integer",
        hub=HubSource("yentinglin/aime_2025", "train"),
    ),
    Benchmark(
        "gpqa_diamond",
        {
            "question": "Question",
            "answer": "Correct Answer",
            "distractors": ["Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"],
        },
        "letter",
        "letter",
        instruction=CHOICE_INSTRUCTION,
        hub=HubSource("Idavidrein/gpqa", "train", "gpqa_diamond"),
    ),
):
    register_benchmark(_builtin)


def get_benchmark(name_or_spec: str | Benchmark) -> Benchmark:
    """A registered benchmark by name, or one read from a YAML spec file."""
    if isinstance(name_or_spec, Benchmark):
        return name_or_spec
    if name_or_spec.endswith((".yaml", ".yml")):
        return benchmark_from_yaml(name_or_spec)
    if name_or_spec not in _REGISTRY and name_or_spec in LAZY_BUILTINS:
        module, function = LAZY_BUILTINS[name_or_spec].split(":")
        _REGISTRY[name_or_spec] = getattr(importlib.import_module(module), function)()
    if name_or_spec not in _REGISTRY:
        raise SfnError(
            f"unknown benchmark {name_or_spec!r}; choose one of {', '.join(registered_benchmarks())}, "
            "or pass a YAML spec file (question_field, answer_field, extractor, comparer)"
        )
    return _REGISTRY[name_or_spec]


def benchmark_from_yaml(path: str | Path) -> Benchmark:
    """A benchmark from a YAML spec: name, question_field, answer_field, extractor, comparer,
    optionally distractor_fields, instruction and data (a local file, relative to the spec)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise SfnError(f"benchmark spec {path} does not exist")
    spec = yaml.safe_load(path.read_text()) or {}
    known = {"name", "question_field", "answer_field", "distractor_fields", "extractor", "comparer", "instruction", "data"}
    problems = [f"{path}: unknown key {key!r}; known keys: {', '.join(sorted(known))}" for key in spec if key not in known]
    problems += [f"{path}: missing {key!r}" for key in ("question_field", "answer_field") if key not in spec]
    if problems:
        raise SfnErrors(problems, f"bad benchmark spec {path}")
    fields: dict[str, Any] = {"question": spec["question_field"], "answer": spec["answer_field"]}
    if spec.get("distractor_fields"):
        fields["distractors"] = list(spec["distractor_fields"])
    data = spec.get("data")
    benchmark = Benchmark(
        name=spec.get("name", path.stem),
        fields=fields,
        extractor=spec.get("extractor", "math"),
        comparer=spec.get("comparer", "math"),
        instruction=spec.get("instruction", BOXED_INSTRUCTION),
        data=str((path.parent / data).resolve()) if data else None,
    )
    problems = benchmark.validate()
    if problems:
        raise SfnErrors(problems, f"bad benchmark spec {path}")
    return benchmark


def with_columns(benchmark: Benchmark, mapping: dict[str, str]) -> Benchmark:
    """The benchmark reading its roles from other columns (`--columns question=problem,answer=solution`)."""
    fields = dict(benchmark.fields)
    for role, column in mapping.items():
        fields[role] = column.split("|") if role == "distractors" else column
    return replace(benchmark, fields=fields)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a local .jsonl/.json/.csv/.parquet file; a bad line or byte is an error naming the file and line."""
    return [row for _, row in read_located_rows(path)]


def read_located_rows(path: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """(where, row) pairs, where is "FILE line N" (JSONL) or "FILE row N" (the other formats)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise SfnError(f"data file {path} does not exist")
    if path.suffix == ".jsonl":
        return read_jsonl(path)
    readers = {
        ".json": lambda: pd.read_json(path, dtype=False),
        ".csv": lambda: pd.read_csv(path, dtype=str, keep_default_na=False),
        ".parquet": lambda: pd.read_parquet(path),
    }
    if path.suffix not in readers:
        raise SfnError(f"{path}: unknown data format {path.suffix!r}; use .jsonl, .json, .csv or .parquet")
    if path.suffix in (".json", ".csv"):
        _check_utf8(path)
    try:
        frame = readers[path.suffix]()
    except ImportError as error:  # Parquet needs pyarrow, a dependency of sfn that may have been removed
        raise SfnError(f"{path}: reading {path.suffix} files needs pyarrow: `pip install pyarrow` ({error})") from None
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise SfnError(f"{path}: not a readable {path.suffix} file ({error})") from None
    return [(f"{path} row {number}", row) for number, row in enumerate(frame.to_dict(orient="records"), start=1)]


def _check_utf8(path: Path) -> None:
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as error:
            raise SfnError(f"{path} line {number}: byte 0x{line[error.start]:02x} at column {error.start + 1} is not "
                           "UTF-8; re-save the file as UTF-8") from None


def read_jsonl(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(where, object) for each non-blank line of a JSONL file; every line that is not UTF-8 JSON object
    text is reported at once, named by file and line (benchmarks and `sfn freeze` data alike)."""
    rows, problems = [], []
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            problems.append(f"{path} line {number}: byte 0x{raw[error.start]:02x} at column {error.start + 1} is not "
                            "UTF-8; re-save the file as UTF-8")
            continue
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(f"{path} line {number}: not valid JSON ({error.msg} at column {error.colno})")
            continue
        if not isinstance(row, dict):
            problems.append(f"{path} line {number}: a JSON object per line is expected, got {type(row).__name__}")
            continue
        rows.append((f"{path} line {number}", row))
    if problems:
        raise SfnErrors(problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else []),
                        f"cannot read {path}")
    return rows


def load_rows_from_hub(benchmark: Benchmark) -> list[dict[str, Any]]:
    if benchmark.hub is None:
        raise SfnError(f"benchmark {benchmark.name!r} has no hub source; pass a local file as {argument('data', flag='--data FILE')}")
    hint = f"download it elsewhere and pass {argument('data', flag='--data FILE')}, JSONL/CSV/Parquet with columns {benchmark.required_columns()}"
    try:
        import datasets
    except ImportError:
        raise SfnError(f"loading {benchmark.hub.dataset} from the hub needs `pip install datasets`; or {hint}") from None
    try:
        table = datasets.load_dataset(benchmark.hub.dataset, benchmark.hub.config, split=benchmark.hub.split)
    except Exception as error:  # noqa: BLE001 - offline, gated, renamed: all end the same way for the user
        raise SfnError(f"could not load {benchmark.hub.dataset} from the Hugging Face hub ({error}); {hint}") from None
    return [dict(row) for row in table]


def load_samples(benchmark: Benchmark, data: str | Path | None = None, limit: int | None = None) -> list[Sample]:
    """The benchmark's samples from `data` (or its spec's file, or the hub), first `limit` only."""
    source = data or benchmark.data
    if source:
        located = read_located_rows(source)
    else:
        located = [(f"{benchmark.hub.dataset} row {number}", row)
                   for number, row in enumerate(load_rows_from_hub(benchmark), start=1)]
    if not located:
        raise SfnError(f"{source or benchmark.hub.dataset}: no rows; a benchmark needs at least one question")
    rows = [row for _, row in located]
    if rows:
        missing = [column for column in benchmark.required_columns() if column not in rows[0]]
        if missing:
            raise SfnError(
                f"{source or benchmark.hub.dataset}: missing column(s) {', '.join(map(repr, missing))} for benchmark "
                f"{benchmark.name!r}; the file has {', '.join(map(repr, rows[0]))}. Map them with "
                f"{argument('columns')}: question=COL,answer=COL"
            )
    located = located[:limit] if limit else located
    problems = [
        f"{where}: no {role} ({column!r} is {'missing' if column not in row else 'null' if _is_null(row[column]) else 'empty'}); "
        "fill it in or drop the row"
        for where, row in located
        for role, column in (("question", benchmark.fields["question"]), ("answer", benchmark.fields["answer"]))
        if column not in row or _is_null(row[column]) or not str(row[column]).strip()
    ]
    if problems:
        raise SfnErrors(problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else []),
                        f"benchmark {benchmark.name!r}: rows without a question or answer")
    samples = [benchmark.make_sample(row, index) for index, (_, row) in enumerate(located)]
    seen = set()
    for sample in samples:
        if sample.id in seen:
            raise SfnError(f"{source}: sample id {sample.id!r} appears twice; ids must be unique for resuming")
        seen.add(sample.id)
    return samples
