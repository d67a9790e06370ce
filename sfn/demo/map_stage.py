"""Map: where R's change lives, by teacher-forced divergence on R's own answers from the Merge stage
(`sfn map`): each linear kind x layer window transplanted from R into B, or zeroed in B."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sfn.demo.pair import DemoPair

MODES = ("transplant", "zero")
KINDS = "linear"
PROBE_FILE = "probe.jsonl"
WINDOWS_AT_MOST = 8  # a larger model is mapped in windows of several layers, to keep the demo short


def map_window(num_layers: int) -> int:
    return max(1, math.ceil(num_layers / WINDOWS_AT_MOST))


@dataclass
class MapStage:
    table: pd.DataFrame
    summary: dict[str, Any]
    figures: dict[str, Path]
    probe: Path


def write_probe(pair: DemoPair, evaluation: dict[str, Any], samples: pd.DataFrame, path: Path) -> Path:
    """R's outputs of the Merge stage as a probe file: each prompt as the evaluation built it, and R's answer."""
    from sfn.eval.prompts import build_prompt

    rows = samples[(samples["variant"] == "R") & (samples["output"].astype(str).str.strip() != "")]
    lines = [json.dumps({"prompt": build_prompt(row["question"], pair.tokenizer, prompt_format=evaluation["prompt_format"],
                                                instruction=pair.benchmark.instruction),
                         "text": row["output"]}, ensure_ascii=False) for _, row in rows.iterrows()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def run_map(pair: DemoPair, evaluation: dict[str, Any], samples: pd.DataFrame, out: Path) -> MapStage:
    """`sfn map` on the pair with R's Merge-stage answers as the probe; writes OUT/ (map.csv, summary.json, heatmaps)."""
    from sfn.experiments.map_outputs import write_map
    from sfn.experiments.maps import map as make_map

    probe = write_probe(pair, evaluation, samples, out / PROBE_FILE)
    result = make_map(str(pair.base_source), str(pair.tuned_source), modes=MODES, kinds=KINDS, window=map_window(pair.num_layers),
                      probes=[str(probe)], tokenizer=pair.tokenizer, progress=False)
    paths = write_map(result, out)
    figures = {name.removesuffix(".png"): path for name, path in paths.items() if name.endswith(".png")}
    return MapStage(result.table, result.summary, figures, probe)
