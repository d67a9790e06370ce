"""`sfn map`: a planted edit is found at the top of the transplant map and only there, untouched cells
score exactly 0, the model is restored bit for bit, prefix reuse changes no bit, and bad requests are
refused all at once before any work."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import transformers as tf
from click.testing import CliRunner

from hostile.hostile_inputs import listing, tree_digest
from sfn.cli import main
from sfn.errors import SfnError, SfnErrors
from sfn.experiments.divergence import bootstrap_mean, token_mean
from sfn.experiments.map_outputs import write_map
from sfn.experiments.maps import map as make_map


@pytest.fixture(scope="module")
def transplant_map(planted_pair, probe_file):
    base, tuned = planted_pair
    return make_map(base, tuned, modes=["transplant", "zero"], probes=[str(probe_file)], progress=False)


def test_the_planted_cell_tops_the_transplant_map_and_only_it_moves(transplant_map) -> None:
    table = transplant_map.table.set_index(["mode", "kind", "layers"])
    transplant = table.loc["transplant"]
    assert transplant.loc[("o", "2"), "recovered_share"] == 1.0 and transplant.loc[("o", "2"), "kl_to_tuned"] == 0.0
    assert transplant.loc[("o", "all"), "recovered_share"] == 1.0
    others = transplant.drop(index=[("o", "2"), ("o", "all")])
    assert len(others) > 20 and (others["recovered_share"] == 0.0).all() and (others["kl_to_base"] == 0.0).all()
    top = transplant_map.summary["top_cells"]["transplant/probe"][0]
    assert (top["kind"], top["layers"]) == ("o", "2")
    assert transplant_map.summary["prefix_reuse"] == ["base/probe"] and transplant_map.notes == []


def test_destruction_cells_cost_and_their_intervals_hold_the_mean(transplant_map) -> None:
    zero = transplant_map.table.query("mode == 'zero'")
    assert (zero["ci_of"] == "kl_to_base").all() and (zero["kl_to_base"] > 0).all()
    assert ((zero["kl_ci_low"] <= zero["kl_to_base"]) & (zero["kl_to_base"] <= zero["kl_ci_high"])).all()
    assert zero["delta_rel_change"].notna().sum() > 0


def test_prefix_reuse_changes_no_bit_and_the_model_is_restored(planted_pair, probe_file, transplant_map) -> None:
    base, tuned = planted_pair
    model = tf.AutoModelForCausalLM.from_pretrained(base)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    whole = make_map(model, tuned, modes=["transplant", "zero"], probes=[str(probe_file)], reuse_prefix=False,
                     tokenizer=tf.AutoTokenizer.from_pretrained(base), progress=False)
    assert whole.summary["prefix_reuse"] == []
    columns = ["kl_to_base", "kl_to_tuned", "recovered_share"]
    assert np.array_equal(whole.table[columns].to_numpy(), transplant_map.table[columns].to_numpy(), equal_nan=True)
    assert all(torch.equal(p, before[name]) for name, p in model.named_parameters())


def test_alpha_curve_ends_at_b_and_r_exactly(planted_pair, probe_file) -> None:
    base, tuned = planted_pair
    result = make_map(base, tuned, modes=[], alpha_curve="o", alphas=[0.0, 0.5, 1.0], probes=[str(probe_file)], progress=False)
    curve = result.table.set_index("alpha")
    assert curve.loc[0.0, "kl_to_base"] == 0.0 and curve.loc[1.0, "kl_to_tuned"] == 0.0
    assert 0 < curve.loc[0.5, "kl_to_tuned"] < curve.loc[0.0, "kl_to_tuned"]


def test_built_in_probe_is_generated_once_and_cached(planted_pair, tmp_path) -> None:
    base, tuned = planted_pair
    settings = dict(modes=["transplant"], kinds="o", probes=["math"], probe_limit=3, max_new_tokens=6,
                    cache_dir=tmp_path / "probes", progress=False)
    first = make_map(base, tuned, **settings)
    cached = list((tmp_path / "probes").glob("math-*.jsonl"))
    assert len(cached) == 1 and len(cached[0].read_text().splitlines()) == 3
    stamp = cached[0].stat().st_mtime_ns
    second = make_map(base, tuned, **settings)
    assert cached[0].stat().st_mtime_ns == stamp and first.table.equals(second.table)
    assert "greedy answers of tuned" in first.summary["probes"]["math"]["source"]


def test_every_problem_is_refused_at_once_before_any_work(planted_pair, tmp_path) -> None:
    base, tuned = planted_pair
    before = tree_digest(base)
    with pytest.raises(SfnErrors) as error:
        make_map(base, tuned, modes=["transplant", "melt"], kinds="o,nonsense", windows="2-9", probes=["nope.jsonl"],
                 alpha_curve="o@7", on="middle", cache_dir=base / "probes", dtype="float8", progress=False)
    text = str(error.value)
    for expected in ("'melt'", "'nonsense'", "outside the model's layers", "nope.jsonl", "--alpha-curve", "--on",
                     "overlaps the input", "--dtype"):
        assert expected in text, expected
    assert tree_digest(base) == before


def test_a_bf16_pair_is_mapped_in_float32_unless_asked_and_half_precision_is_noted(planted_pair, probe_file,
                                                                                   tmp_path) -> None:
    half = {}
    for role, source in zip(("base", "tuned"), planted_pair):
        model = tf.AutoModelForCausalLM.from_pretrained(source, dtype=torch.bfloat16)
        model.save_pretrained(tmp_path / role)
        tf.AutoTokenizer.from_pretrained(source).save_pretrained(tmp_path / role)
        half[role] = model
    settings = dict(modes=["transplant"], kinds="o", probes=[str(probe_file)], progress=False)
    exact = make_map(tmp_path / "base", tmp_path / "tuned", **settings)
    upcast = {role: tf.AutoModelForCausalLM.from_pretrained(tmp_path / role, dtype=torch.float32) for role in half}
    loaded = make_map(upcast["base"], upcast["tuned"], tokenizer=tf.AutoTokenizer.from_pretrained(tmp_path / "base"),
                      **settings)
    assert exact.notes == [] and exact.table.equals(loaded.table)  # the default loads the bf16 files as float32
    fast = make_map(tmp_path / "base", tmp_path / "tuned", dtype="auto", **settings)
    assert len(fast.notes) == 1 and "bfloat16" in fast.notes[0] and "--dtype float32" in fast.notes[0]
    row = fast.table.set_index(["kind", "layers"]).loc[("o", "2")]
    assert row["recovered_share"] == 1.0  # R's own tensor transplanted: the same bits as R, in bf16 too
    assert not fast.table["kl_to_base"].equals(exact.table["kl_to_base"])  # computed in bf16: other numbers
    said = CliRunner().invoke(main, ["map", str(tmp_path / "base"), str(tmp_path / "tuned"), "--out", str(tmp_path / "m"),
                                     "--modes", "transplant", "--kinds", "o", "--probe", str(probe_file), "--dtype", "auto",
                                     "--no-plots", "-q"])
    assert said.exit_code == 0 and "note: the map ran in bfloat16" in said.output
    assert "the map ran in bfloat16" in json.loads((tmp_path / "m/summary.json").read_text())["notes"][0]


def test_a_bad_probe_file_names_every_line(planted_pair, tmp_path) -> None:
    base, tuned = planted_pair
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "text": "b"}\n{"prompt": "a"}\n{"text": ""}\n')
    with pytest.raises(SfnErrors) as error:
        make_map(base, tuned, probes=[str(bad)], progress=False)
    assert "line 2" in str(error.value) and "line 3" in str(error.value)


def test_cli_writes_the_map_and_refuses_an_output_inside_a_model(planted_pair, probe_file, tmp_path) -> None:
    base, tuned = planted_pair
    out = tmp_path / "map"
    result = CliRunner().invoke(main, ["map", str(base), str(tuned), "--out", str(out), "--probe", str(probe_file),
                                       "--kinds", "o,v", "--modes", "transplant,remove", "--alpha-curve", "o", "--alphas", "0,1"])
    assert result.exit_code == 0, result.output
    assert "top transplant/probe: o@2" in result.output
    assert sorted(listing(out)) == ["alpha_curve.png", "map.csv", "map_remove_probe.png", "map_transplant_probe.png", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())  # strict JSON: NaN written as null
    assert set(summary["changed_vs_matters"]) == {"transplant/probe", "remove/probe"}
    refused = CliRunner().invoke(main, ["map", str(base), str(tuned), "--out", str(base / "map"), "--probe", str(probe_file)])
    assert refused.exit_code == 2 and "overlaps the input" in refused.output and not (base / "map").exists()


def test_write_map_leaves_an_earlier_map_whole_on_failure(transplant_map, tmp_path, monkeypatch) -> None:
    out = tmp_path / "map"
    write_map(transplant_map, out, plots=False)
    earlier = tree_digest(out)
    monkeypatch.setattr("sfn.experiments.map_outputs.json.dumps", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(SfnError, match="no space left on .+; nothing was written"):
        write_map(transplant_map, out, plots=False)
    assert tree_digest(out) == earlier


def test_token_mean_and_bootstrap() -> None:
    per_token, sequence = np.array([1.0, 1.0, 1.0, 3.0]), np.array([0, 0, 1, 1])
    assert token_mean(per_token, sequence) == 1.5
    low, high = bootstrap_mean(per_token, sequence)
    assert low == 1.0 and high == 2.0  # resampling whole sequences: both of 0 (mean 1), both of 1 (mean 2)
    assert bootstrap_mean(per_token, sequence) == (low, high)
