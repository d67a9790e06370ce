"""How a module changed: planted sparse, low-rank, one-head and one-ulp edits are recovered exactly,
and NaN, inf and all-zero bases are reported rather than poisoning the statistics."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from tiny_models import perturb_copy
from sfn.cli import main
from sfn.stethoscopes.delta import delta, summarize, write_outputs
from sfn.stethoscopes.delta.spectral import sketch_dtype


def _row(result, layer: int, kind: str) -> pd.Series:
    table = result.table
    return table[(table["layer"] == layer) & (table["kind"] == kind)].iloc[0]


def _heads(table: pd.DataFrame, layer: int, kind: str) -> pd.DataFrame:
    heads = table.heads
    return heads[(heads["layer"] == layer) & (heads["kind"] == kind)].sort_values("head")


def planted(name: str, t: torch.Tensor) -> torch.Tensor | None:
    g = torch.Generator().manual_seed(7)
    if name.endswith("layers.1.self_attn.o_proj.weight"):  # rank 2, singular values 2 and 1
        u, _ = torch.linalg.qr(torch.randn(t.shape[0], 2, generator=g))
        v, _ = torch.linalg.qr(torch.randn(t.shape[1], 2, generator=g))
        return t + u @ torch.diag(torch.tensor([2.0, 1.0])) @ v.T
    if name.endswith("layers.2.mlp.up_proj.weight"):  # exactly 10% of the elements, each by 50%
        flat = t.reshape(-1).clone()
        chosen = torch.randperm(flat.numel(), generator=g)[: flat.numel() // 10]
        flat[chosen] *= 1.5
        return flat.reshape(t.shape)
    if name.endswith("layers.3.self_attn.o_proj.weight"):  # head 1 of 4: input columns 8..15
        t[:, 8:16] += 0.05
        return t
    if name.endswith("layers.0.self_attn.k_proj.weight"):  # key-value head 1 of 2: rows 8..15, full rank
        t[8:16] += 0.05 * torch.randn(8, t.shape[1], generator=g)
        return t
    return None


@pytest.fixture(scope="module")
def planted_table(tiny_model_dir, tuned_dir):
    return delta(tiny_model_dir("llama"), tuned_dir("llama", "planted", planted), progress=False, spectral=True,
                 block_elements=100)


def test_rank_two_update_is_recovered(planted_table):
    o = _row(planted_table, 1, "o")
    assert o["sv1_share"] == pytest.approx(4 / 5, rel=1e-4)
    assert o["stable_rank"] == pytest.approx(5 / 4, rel=1e-4)
    assert o["energy_at_8"] == pytest.approx(1.0, rel=1e-4) and o["energy_at_64"] == pytest.approx(1.0, rel=1e-4)
    # a dense full-rank update of another layer is not low rank
    assert _row(planted_table, 3, "o")["stable_rank"] == pytest.approx(1.0, rel=1e-3)  # a constant block: rank 1


def test_sparse_update_share_is_exact(planted_table):
    up = _row(planted_table, 2, "up")
    assert up["changed_share"] == pytest.approx(0.1, abs=1 / up["numel"])
    assert up["moved_share"] == pytest.approx(up["changed_share"], abs=1e-12)
    assert _row(planted_table, 2, "down")["changed_share"] == 0
    assert up["nonfinite"] == 0


def test_one_changed_head_carries_all_of_its_layers_change(planted_table):
    o3 = _heads(planted_table, 3, "o")
    assert list(o3["share"].round(12)) == [0, 1, 0, 0]
    assert o3.iloc[1]["abs_norm"] == pytest.approx(0.05 * math.sqrt(32 * 8), rel=1e-5)
    k0 = _heads(planted_table, 0, "k")
    assert list(k0["share"].round(12)) == [0, 1]
    assert list(k0["query_heads"]) == ["0-1", "2-3"]  # 4 query heads share 2 key-value heads
    assert _heads(planted_table, 1, "q")["share"].isna().all()  # q of layer 1 did not change


def test_summary_names_the_concentrated_o_heads(planted_table, tmp_path):
    paths = write_outputs(planted_table, tmp_path / "out", every=2)
    document = json.loads(paths["summary"].read_text())
    layer3 = [r for r in document["o_heads"] if r["layer"] == 3][0]
    assert layer3["heads"] == [1] and layer3["share"] == pytest.approx(1.0)
    assert "1 of 4 heads in layer 3" in document["finding"]
    assert "o in the lowest-rank way" in document["finding"]
    assert {"median_changed_share", "median_stable_rank", "median_base_subspace_share"} <= set(document["kinds"]["o"])
    heads_csv = pd.read_csv(paths["heads"])
    assert list(heads_csv.columns) == ["layer", "kind", "head", "query_heads", "abs_norm", "rel_norm", "share"]
    assert len(heads_csv) == 4 * (4 + 2 + 2 + 4)
    assert paths["heads_png"].stat().st_size > 0


@pytest.mark.parametrize(
    ("arch", "fused", "change"),
    [
        ("phi3", "self_attn.qkv_proj.weight", lambda t: t[16:24].add_(0.1)),  # q rows of head 2
        ("gpt2", "attn.c_attn.weight", lambda t: t[:, 16:24].add_(0.1)),  # stored [in, out]: q columns of head 2
        ("gpt_neox", "attention.query_key_value.weight", lambda t: t[2 * 24 : 2 * 24 + 8].add_(0.1)),  # head 2's q
    ],
)
def test_fused_tensors_are_split_per_head(arch, fused, change, tiny_model_dir, tuned_dir):
    def perturb(name, t):
        if name.endswith(fused) and ".0." in name:
            change(t)
            return t
        return None

    table = delta(tiny_model_dir(arch), tuned_dir(arch, "head2", perturb), progress=False, block_elements=64)
    q = _heads(table, 0, "q")
    assert list(q["share"].round(12)) == [0, 0, 1, 0]
    assert q.iloc[2]["abs_norm"] == pytest.approx(0.1 * math.sqrt(8 * 32), rel=1e-5)
    assert _heads(table, 0, "k")["share"].isna().all()


def test_gpt2_o_heads_are_stored_rows(tiny_model_dir, tuned_dir):
    def perturb(name, t):  # c_proj is stored [in, out]: head 3 is stored rows 24..31
        if name.endswith("h.1.attn.c_proj.weight"):
            t[24:32] += 0.1
            return t
        return None

    table = delta(tiny_model_dir("gpt2"), tuned_dir("gpt2", "o-head3", perturb), progress=False, block_elements=64)
    assert list(_heads(table, 1, "o")["share"].round(12)) == [0, 0, 0, 1]


def _bf16(name: str, t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.bfloat16)


def test_bf16_one_ulp_changes_are_counted_exactly(tiny_model_dir, tmp_path):
    base = perturb_copy(tiny_model_dir("llama"), tmp_path / "base", _bf16)
    share = 0.25

    def one_ulp(name, t):
        assert t.dtype == torch.bfloat16
        if name.endswith("layers.0.mlp.gate_proj.weight"):
            bits = t.reshape(-1).view(torch.int16)
            chosen = torch.randperm(bits.numel(), generator=torch.Generator().manual_seed(3))[: int(share * bits.numel())]
            bits[chosen] += 1  # the next bf16 value away from zero: one ulp
            return t
        return None

    tuned = perturb_copy(base, tmp_path / "tuned", one_ulp)
    loose = delta(base, tuned, "gate", progress=False)
    gate = _row(loose, 0, "gate")
    assert gate["changed_share"] == share
    # one bf16 ulp is 2^-8..2^-7 of the value: above tol 1e-3, below tol 1e-2
    assert gate["moved_share"] == share
    strict = _row(delta(base, tuned, "gate", progress=False, tol=1e-2), 0, "gate")
    assert strict["moved_share"] == 0 and strict["changed_share"] == share
    assert (loose.table[loose.table["layer"] != 0]["changed_share"] == 0).all()


def hostile_base(name: str, t: torch.Tensor) -> torch.Tensor | None:
    if name.endswith("layers.1.mlp.down_proj.weight"):
        t[0, :2] = math.inf
        return t
    if name.endswith("layers.2.post_attention_layernorm.weight"):
        return torch.zeros_like(t)
    return None


def hostile_tuned(name: str, t: torch.Tensor) -> torch.Tensor | None:
    if name.endswith("layers.0.self_attn.q_proj.weight"):
        t = t + 0.01
        t[1, :3] = math.nan
        return t
    if name.endswith("layers.2.post_attention_layernorm.weight"):
        return torch.full_like(t, 0.5)
    return None


def test_nan_inf_and_zero_bases_are_reported_and_json_stays_strict(tiny_model_dir, tmp_path):
    base = perturb_copy(tiny_model_dir("llama"), tmp_path / "base", hostile_base)
    tuned = perturb_copy(base, tmp_path / "tuned", lambda n, t: (hostile_tuned(n, t.clone())))
    table = delta(base, tuned, progress=False, spectral=True)
    q = _row(table, 0, "q")
    assert q["nonfinite"] == 3
    finite = 32 * 32 - 3
    assert q["abs_norm"] == pytest.approx(0.01 * math.sqrt(finite), rel=1e-4)  # over the finite elements only
    assert np.asarray(q["clamped_histogram"]).sum() == finite
    assert math.isnan(q["sv1_share"])  # no spectrum of a matrix with NaN in it
    down = _row(table, 1, "down")
    assert down["nonfinite"] == 2 and math.isfinite(down["base_norm"]) and down["abs_norm"] == 0
    norm = _row(table, 2, "mlp_norm")
    assert math.isnan(norm["rel_norm"]) and "base weights are all zero" in norm["note"]
    notes = " ".join(table.notes)
    assert "model.layers.0.self_attn.q_proj.weight (3 elements)" in notes
    assert "model.layers.1.mlp.down_proj.weight (2 elements)" in notes
    assert "layers.2.post_attention_layernorm.weight: the base is all zeros" in notes
    assert summarize(table).iloc[0]["kind"] != "mlp_norm"  # a zero base is not ranked first
    paths = write_outputs(table, tmp_path / "out", plots=False)

    def refuse(constant: str) -> None:
        raise AssertionError(f"summary.json holds {constant}")

    document = json.loads(paths["summary"].read_text(), parse_constant=refuse)
    assert document["kinds"]["q"]["nonfinite"] == 3
    assert any("q_proj.weight (3 elements)" in n for n in document["notes"])


def clamp_piles(name: str, t: torch.Tensor) -> torch.Tensor | None:
    """gate: 70% of r ~ N(0, 0.2) (one mode), 30% of r = +-5 (outside the clip range)."""
    if ".mlp.gate_proj." not in name:
        return None
    g = torch.Generator().manual_seed(len(name))
    r = 0.2 * torch.randn(t.shape, generator=g)
    far = torch.rand(t.shape, generator=g) < 0.3
    r = torch.where(far, 5.0 * torch.sign(torch.randn(t.shape, generator=g)), r)
    return t + r * t.abs()


def test_edge_piles_under_clamping_are_named_in_the_notes(tiny_model_dir, tuned_dir, tmp_path):
    table = delta(tiny_model_dir("llama"), tuned_dir("llama", "piles", clamp_piles), progress=False)
    gate = table.table[table.table["kind"] == "gate"]
    assert gate["clamp_bimodal"].all() and not gate["bimodal"].any()
    expected = gate["clipped_share"] + 0  # the clipped values, plus the in-range ones in the end bins
    assert (gate["edge_share"] >= expected - 1e-12).all() and (gate["edge_share"] < expected + 0.01).all()
    clamped = np.stack(gate["clamped_histogram"].to_list())
    assert (clamped.sum(axis=1) == gate["numel"].to_numpy()).all()
    assert not table.table[table.table["kind"] == "up"]["clamp_bimodal"].any()  # unchanged: every r is 0
    paths = write_outputs(table, tmp_path / "out", every=2, paper_clamp=True)
    document = json.loads(paths["summary"].read_text())
    assert any(n.startswith("gate looks bimodal under the paper's clamping in 4 of 4 layers") for n in document["notes"])
    assert paths["clamped_png"].stat().st_size > 0


def test_cli_takes_the_new_options(tiny_model_dir, tuned_dir, tmp_path):
    tuned = tuned_dir("llama", "planted", planted)
    result = CliRunner().invoke(
        main, ["delta", str(tiny_model_dir("llama")), str(tuned), "--out", str(tmp_path / "o"), "--spectral",
               "--paper-clamp", "--tol", "0.6"]
    )
    assert result.exit_code == 0, result.output
    csv = pd.read_csv(tmp_path / "o" / "delta.csv")
    assert {"changed_share", "moved_share", "edge_share", "nonfinite", "stable_rank", "base_subspace_share"} <= set(csv.columns)
    up = csv[(csv["layer"] == 2) & (csv["kind"] == "up")].iloc[0]
    assert up["moved_share"] == 0 and up["changed_share"] > 0  # a 50% change is not above tol 0.6 x |W_B|
    assert (tmp_path / "o" / "histograms_clamped.png").is_file() and (tmp_path / "o" / "heads.png").is_file()
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["spectral_sketch"] == str(sketch_dtype()).removeprefix("torch.")


def test_a_dense_update_is_not_described_as_a_fewest_and_a_most():
    from sfn.stethoscopes.delta.findings import shape_sentence

    summary = pd.DataFrame({"kind": ["q", "o", "up"], "layers": [4, 4, 4], "median_changed_share": [0.99991, 1.0, 0.99995]})
    sentence = shape_sentence(summary, pd.DataFrame())
    assert sentence == "Every kind changed at least 99.99% of its elements (median over layers)."
    summary["median_changed_share"] = [0.5, 1.0, 0.9]
    assert shape_sentence(summary, pd.DataFrame()).startswith("Q changed the fewest elements (50.0%")
