"""The Delta stethoscope: exact statistics, the right modules found, and every documented error."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from tiny_models import gaussian, perturb_copy, two_point, write_config
from sfn.stethoscopes.delta import delta, summarize, write_outputs
from sfn.errors import SfnError, SfnErrors
from sfn.io import open_checkpoint
from sfn.registry import module_map, read_part


def perturb_o_and_norm(name: str, t: torch.Tensor) -> torch.Tensor | None:
    if "layers.1.self_attn.o_proj" in name:
        return two_point(t, 0.3, seed=1)
    if "layers.2.post_attention_layernorm" in name:
        return gaussian(t, 0.01, seed=2)
    return None


def naive_row(base_parts: list[torch.Tensor], tuned_parts: list[torch.Tensor], bins: int, clip, eps: float) -> dict:
    """Whole-tensor float64 reference for one module (its weight and bias together)."""
    b = torch.cat([p.double().reshape(-1) for p in base_parts])
    t = torch.cat([p.double().reshape(-1) for p in tuned_parts])
    d = t - b
    r = d / (b.abs() + eps)
    inside = r[(r >= clip[0]) & (r <= clip[1])]
    return {
        "abs_norm": d.norm().item(),
        "rel_norm": (d.norm() / b.norm()).item(),
        "base_norm": b.norm().item(),
        "tuned_norm": t.norm().item(),
        "cosine": (torch.dot(b, t) / (b.norm() * t.norm())).item(),
        "max_abs_delta": d.abs().max().item(),
        "r_mean": inside.mean().item() if inside.numel() else math.nan,
        "r_std": inside.std(unbiased=False).item() if inside.numel() else math.nan,
        "clipped_share": 1 - inside.numel() / r.numel(),
        "histogram": np.histogram(inside.numpy(), bins=bins, range=clip)[0],
    }


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt2", "phi3"])
def test_streamed_statistics_equal_a_naive_whole_tensor_computation(arch, tiny_model_dir, tuned_dir):
    base_dir = tiny_model_dir(arch)
    tuned = tuned_dir(arch, "noise", lambda name, t: gaussian(t, 0.02, seed=len(name)))
    bins, clip, eps = 41, (-0.5, 0.5), 1e-6
    # 48-element blocks force many blocks per tensor (and fused/transposed column blocks)
    table = delta(base_dir, tuned, bins=bins, clip=clip, eps=eps, progress=False, block_elements=48).table
    with open_checkpoint(base_dir) as b, open_checkpoint(tuned) as t:
        parts = module_map(b).parts
        tuned_parts = {(p.tensor, p.kind, p.param): p for p in module_map(t).parts}
        for _, row in table.iterrows():
            mine = [p for p in parts if p.kind == row["kind"] and p.layer == (None if pd.isna(row["layer"]) else row["layer"])]
            expected = naive_row(
                [read_part(b, p) for p in mine], [read_part(t, tuned_parts[(p.tensor, p.kind, p.param)]) for p in mine], bins, clip, eps
            )
            for column in ("abs_norm", "rel_norm", "base_norm", "tuned_norm", "cosine", "max_abs_delta", "r_mean", "r_std"):
                assert row[column] == pytest.approx(expected[column], rel=2e-5, abs=1e-9), (row["kind"], row["layer"], column)
            assert row["clipped_share"] == pytest.approx(expected["clipped_share"], abs=1e-12)
            assert row["histogram"].sum() == expected["histogram"].sum()
            # r is binned in float32: a value on a bin edge may land in the neighbouring bin
            drift = np.abs(np.cumsum(row["histogram"]) - np.cumsum(expected["histogram"])).max()
            assert drift <= max(2, 0.002 * row["numel"])


def test_finds_exactly_the_changed_modules(tiny_model_dir, tuned_dir):
    table = delta(tiny_model_dir("llama"), tuned_dir("llama", "o1-norm2", perturb_o_and_norm), progress=False).table
    changed = table[table["abs_norm"] > 0]
    assert set(zip(changed["layer"], changed["kind"])) == {(1, "o"), (2, "mlp_norm")}
    o_row = changed[changed["kind"] == "o"].iloc[0]
    assert o_row["rel_norm"] == pytest.approx(0.3, rel=1e-6)
    assert o_row["bimodal"]
    assert not changed[changed["kind"] == "mlp_norm"].iloc[0]["bimodal"]
    assert summarize(table).iloc[0]["kind"] == "o"


def test_gaussian_noise_is_not_bimodal_and_two_point_change_is(tiny_model_dir, tuned_dir):
    def perturb(name, t):
        if "self_attn.o_proj" in name:
            return two_point(t, 0.1, seed=3)
        if "mlp.up_proj" in name:
            return t * (1 + 0.1 * torch.randn(t.shape, generator=torch.Generator().manual_seed(4)))
        return None

    table = delta(tiny_model_dir("mistral"), tuned_dir("mistral", "bimodal", perturb), progress=False).table
    assert table[table["kind"] == "o"]["bimodal"].all()
    up = table[table["kind"] == "up"]
    assert not up["bimodal"].any()
    assert (up["bimodality_coef"] < 5 / 9).all()


@pytest.mark.parametrize(
    ("arch", "fused_name", "rows"),
    [("phi3", "self_attn.qkv_proj.weight", slice(0, 32)), ("gpt_neox", "attention.query_key_value.weight", None)],
)
def test_fused_tensor_changes_are_attributed_to_their_part(arch, fused_name, rows, tiny_model_dir, tuned_dir):
    def perturb(name, t):
        if name.endswith(fused_name):
            if rows is not None:  # phi3: the q block is the first 32 rows
                t[rows] += 0.1
            else:  # neox: rows interleave per head [q k v] x 4 heads of size 8; change each head's k
                for head in range(4):
                    t[head * 24 + 8 : head * 24 + 16] += 0.1
            return t
        return None

    table = delta(tiny_model_dir(arch), tuned_dir(arch, "fused", perturb), progress=False).table
    changed = set(table[table["abs_norm"] > 0]["kind"])
    assert changed == ({"q"} if rows is not None else {"k"})


def test_gpt2_conv1d_columns_map_to_kinds(tiny_model_dir, tuned_dir):
    def perturb(name, t):
        if name.endswith("attn.c_attn.weight"):  # stored [in, out]: v is the last third of the columns
            t[:, 64:] += 0.1
            return t
        return None

    table = delta(tiny_model_dir("gpt2"), tuned_dir("gpt2", "v-columns", perturb), progress=False).table
    assert set(table[table["abs_norm"] > 0]["kind"]) == {"v"}


def test_selector_and_layers_limit_the_rows(tiny_model_dir, tuned_dir):
    table = delta(tiny_model_dir("llama"), tuned_dir("llama", "o1-norm2", perturb_o_and_norm), "o,mlp_norm", layers="1-2", progress=False).table
    assert sorted(zip(table["layer"], table["kind"])) == [(1, "mlp_norm"), (1, "o"), (2, "mlp_norm"), (2, "o")]


def test_vocabulary_difference_compares_shared_rows(tiny_model_dir, tmp_path):
    def grow(name, t):
        if name.endswith(("embed_tokens.weight", "lm_head.weight")):
            return torch.cat([t + 0.01, torch.ones(3, t.shape[1])])
        return None

    tuned = perturb_copy(tiny_model_dir("llama"), tmp_path / "tuned", grow)
    write_config(tuned, vocab_size=67)
    result = delta(tiny_model_dir("llama"), tuned, progress=False)
    embed = result.table[result.table["kind"] == "embed"].iloc[0]
    assert embed["numel"] == 64 * 32
    assert embed["max_abs_delta"] == pytest.approx(0.01, rel=1e-3)
    assert "64 shared rows" in " ".join(result.notes)


def test_missing_tensors_are_listed_not_fatal(tiny_model_dir, tmp_path):
    from safetensors.torch import save_file

    tensors = load_file(tiny_model_dir("llama") / "model.safetensors")
    del tensors["model.layers.3.mlp.down_proj.weight"]
    out = tmp_path / "tuned"
    out.mkdir()
    save_file(tensors, out / "model.safetensors")
    (out / "config.json").write_text((tiny_model_dir("llama") / "config.json").read_text())
    result = delta(tiny_model_dir("llama"), out, progress=False)
    assert result.summary["missing_in_tuned"] == ["model.layers.3.mlp.down_proj.weight"]
    assert "1 tensors are missing" in " ".join(result.notes)
    assert not ((result.table["layer"] == 3) & (result.table["kind"] == "down")).any()


def test_tied_embeddings_are_counted_once(tiny_model_dir, tuned_dir):
    table = delta(tiny_model_dir("gemma"), tuned_dir("gemma", "same", lambda n, t: None), progress=False).table
    assert "head" not in set(table["kind"]) and (table["kind"] == "embed").sum() == 1
    assert (table["abs_norm"] == 0).all()


def test_mismatched_models_fail_before_any_work(tiny_model_dir):
    with pytest.raises(SfnErrors, match="architecture differs") as error:
        delta(tiny_model_dir("llama"), tiny_model_dir("gpt2"), progress=False)
    assert any("gpt2" in p for p in error.value.problems)


def test_a_changed_shape_is_an_error_naming_the_tensor(tiny_model_dir, tmp_path):
    tuned = perturb_copy(
        tiny_model_dir("llama"), tmp_path / "t", lambda n, t: t[:, :16] if n.endswith("layers.0.mlp.down_proj.weight") else None
    )
    with pytest.raises(SfnErrors, match="model.layers.0.mlp.down_proj.weight"):
        delta(tiny_model_dir("llama"), tuned, progress=False)


@pytest.mark.parametrize(("kwargs", "message"), [({"bins": 1}, "bins"), ({"clip": (1, -1)}, "clip"), ({"eps": 0}, "eps")])
def test_bad_options_are_reported(kwargs, message, tiny_model_dir):
    with pytest.raises(SfnError, match=message):
        delta(tiny_model_dir("llama"), tiny_model_dir("llama"), progress=False, **kwargs)


def test_outputs_are_written(tiny_model_dir, tuned_dir, tmp_path):
    result = delta(tiny_model_dir("llama"), tuned_dir("llama", "o1-norm2", perturb_o_and_norm), progress=False)
    paths = write_outputs(result, tmp_path / "out", every=2)
    for key in ("csv", "histograms", "summary", "norms", "histograms_png", "heatmap"):
        assert paths[key].is_file() and paths[key].stat().st_size > 0
    csv = pd.read_csv(paths["csv"])
    assert {"layer", "kind", "abs_norm", "rel_norm", "bimodal"} <= set(csv.columns)
    summary = json.loads(paths["summary"].read_text())
    assert summary["kinds"]["o"]["rank"] == 1 and summary["kinds"]["o"]["bimodal_layers"] == 1
    saved = np.load(paths["histograms"])
    assert saved["counts"].shape == (len(result.table), result.summary["bins"])
    assert np.array_equal(saved["bin_edges"], result.bin_edges) and len(result.bin_edges) == result.summary["bins"] + 1
    assert summary["base"] == result.summary["base"] and summary["notes"] == result.notes


# `sfn delta` on safetensors in a fresh interpreter: the whole command, figures included, reads the
# mapped bits with numpy and numba, so a researcher's run does not wait the seconds importing torch takes.
TORCH_FREE = r"""
import json, sys
from sfn.cli import main
try:
    main.main(["delta", *sys.argv[1:]], prog_name="sfn")
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "torch": "torch" in sys.modules}))
"""


def test_sfn_delta_of_two_safetensors_checkpoints_never_imports_torch(tiny_model_dir, tuned_dir, tmp_path):
    base, tuned = tiny_model_dir("qwen2"), tuned_dir("qwen2", "o1-norm2", perturb_o_and_norm)
    completed = subprocess.run([sys.executable, "-c", TORCH_FREE, str(base), str(tuned), "--out", str(tmp_path / "out")],
                               capture_output=True, text=True, cwd=Path(__file__).parents[3])
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report == {"code": 0, "torch": False}, completed.stderr[-2000:]
    written = pd.read_csv(tmp_path / "out" / "delta.csv")
    expected = delta(base, tuned, progress=False).table  # in this process, which has torch
    assert list(written["kind"]) == list(expected["kind"])
    np.testing.assert_allclose(written["abs_norm"], expected["abs_norm"], rtol=1e-12)
    assert (tmp_path / "out" / "heads.png").is_file()
