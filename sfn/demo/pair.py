"""The pair a demo diagnoses: the built-in organism by default, or any base/tuned pair.

Both models are loaded once; every stethoscope edits them in memory and restores them exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sfn.errors import SfnError
from sfn.eval.benchmarks import Benchmark, get_benchmark

ORGANISM_LABEL = "the built-in model organism"


@dataclass
class DemoPair:
    """Base and tuned model (loaded), the benchmark they are compared on, and R's training data."""

    base_source: Path
    tuned_source: Path
    base: Any
    tuned: Any
    tokenizer: Any
    benchmark: Benchmark
    benchmark_data: str | None
    train_data: Path | None  # JSONL of question/reasoning/answer for the Freeze stage; None skips it
    response_template: str | None
    label: str
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def num_layers(self) -> int:
        return int(self.base.config.num_hidden_layers)

    def describe(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "base": str(self.base_source),
            "tuned": str(self.tuned_source),
            "model_type": self.base.config.model_type,
            "num_layers": self.num_layers,
            "parameters": sum(p.numel() for p in self.base.parameters()),
            "benchmark": self.benchmark.name,
            "provenance": self.provenance,
        }


def organism_pair(out: Path) -> DemoPair:
    """The shipped organism, with organism-math and R's training data (regenerated from its seed)."""
    from sfn.organism.benchmark import SHIPPED_DIR
    from sfn.organism.corpus import write_training_records

    provenance_path = SHIPPED_DIR / "provenance.json"
    if not provenance_path.is_file():
        raise SfnError(f"the organism's weights are missing from {SHIPPED_DIR}; run `sfn organism build --out {SHIPPED_DIR}`")
    provenance = json.loads(provenance_path.read_text())
    train_data, template = write_training_records(provenance["seed"], out / "train.jsonl")
    return _loaded(SHIPPED_DIR / "base", SHIPPED_DIR / "tuned", "organism-math", None, train_data, template,
                   ORGANISM_LABEL, provenance)


def custom_pair(base: str, tuned: str, benchmark: str, data: str | None, train_data: str | None) -> DemoPair:
    """Any pair with the same architecture, compared on `benchmark` (with `data` for a local file);
    the inputs are checked first (`sfn.demo.checks.check_custom_pair`)."""
    return _loaded(Path(base), Path(tuned), benchmark, data, Path(train_data) if train_data else None, None,
                   f"{base} and {tuned}", {})


def _loaded(base: Path, tuned: Path, benchmark: str, data: str | None, train_data: Path | None,
            template: str | None, label: str, provenance: dict[str, Any]) -> DemoPair:
    from sfn.io.load_model import load_model

    bench = get_benchmark(benchmark)
    base_model, tokenizer = load_model(base)
    tuned_model, _ = load_model(tuned, with_tokenizer=False)
    if tokenizer is None:
        raise SfnError(f"{base} has no tokenizer; the demo generates text and needs one")
    if base_model.config.num_hidden_layers != tuned_model.config.num_hidden_layers:
        raise SfnError(f"{base} has {base_model.config.num_hidden_layers} layers and {tuned} "
                       f"{tuned_model.config.num_hidden_layers}: a pair must share its architecture")
    return DemoPair(base, tuned, base_model, tuned_model, tokenizer, bench, data, train_data, template, label, provenance)
