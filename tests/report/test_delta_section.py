"""The report's Delta section carries the sentence on how the kinds changed, and heads.png."""

from __future__ import annotations

import json

import pandas as pd
import torch

from sfn.report.load import DemoData
from sfn.report.sections import delta_section
from sfn.stethoscopes.delta import delta, summarize, write_outputs


def one_o_head(name: str, t: torch.Tensor) -> torch.Tensor | None:
    if ".self_attn.o_proj.weight" in name:  # head 2 of 4 in every layer
        t[:, 16:24] += 0.05
        return t
    return None


def test_delta_section_states_the_finding_and_shows_the_heads(tiny_model_dir, tmp_path):
    from tiny_models import perturb_copy

    base = tiny_model_dir("llama")
    tuned = perturb_copy(base, tmp_path / "tuned", one_o_head)
    table = delta(base, tuned, progress=False)
    paths = write_outputs(table, tmp_path / "delta", every=2)
    finding = json.loads(paths["summary"].read_text())["finding"]
    assert "half of o's change lies in 1 of 4 heads in layers 0-3" in finding
    empty = pd.DataFrame()
    data = DemoData(folder=tmp_path, index={}, delta_table=table, delta_ranking=summarize(table),
                    delta_figures={"norms": paths["norms"], "heads": paths["heads_png"]}, merge=empty,
                    merge_samples=empty, destruction=empty, delta_finding=finding)
    section = delta_section(data)
    assert finding in section.intro
    assert any(path == paths["heads_png"] for _, path in section.figures)
