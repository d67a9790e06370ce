"""`sfn map --accuracy BENCH --top N`: the map's best cells, and B and R, are evaluated by the eval runner
on the one loaded model edited in place; the planted cell is the first evaluated and generates R's very
outputs; the model is B again afterwards, bit for bit; bad requests are refused at once before any work."""

from __future__ import annotations

import json

import pytest
import torch
import transformers as tf
from click.testing import CliRunner

from sfn.cli import main
from sfn.errors import SfnErrors
from sfn.experiments.maps import map as make_map

SETTINGS = {"limit": 3, "max_new_tokens": 6}  # organism-math ships its rows: nothing is downloaded


@pytest.fixture(scope="module")
def checked(planted_pair, probe_file):
    base, tuned = planted_pair
    model = tf.AutoModelForCausalLM.from_pretrained(base)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    result = make_map(model, tuned, modes=["transplant", "zero"], kinds="o,v", probes=[str(probe_file)],
                      tokenizer=tf.AutoTokenizer.from_pretrained(base), accuracy="organism-math", top=2,
                      accuracy_settings=SETTINGS, progress=False)
    return model, before, result


def test_the_planted_top_cell_is_evaluated_first_after_b_and_r(checked) -> None:
    _, _, result = checked
    table = result.accuracy
    assert list(table["cell"][:3]) == ["B", "R", "transplant o@2"] and table.loc[2, "map_rank"] == 1
    assert table.loc[2, "ranked_by"] == "recovered_share" and table.loc[2, "map_score"] == 1.0
    assert list(table["mode"]) == ["base", "tuned", "transplant", "transplant", "zero", "zero"]
    assert (table.query("mode == 'zero'")["ranked_by"] == "kl_to_base").all()
    zero = table.query("mode == 'zero'")["map_score"].tolist()
    assert zero == sorted(zero, reverse=True)
    assert (table["samples"] == 3).all() and table["accuracy"].between(0, 1).all()
    assert ((table["ci_low"] <= table["accuracy"] + 1e-12) & (table["accuracy"] <= table["ci_high"])).all()  # Wilson, 95%


def test_each_run_generates_with_its_cell_applied(checked) -> None:
    _, _, result = checked
    outputs = {folder: run.samples["output"].tolist() for folder, run in result.accuracy_runs.items()}
    assert outputs["B"] != outputs["R"]  # the planted edit changes what the model writes
    assert outputs["transplant_o_2"] == outputs["R"]  # B with R's o@2 is R
    second = result.accuracy.loc[3, "cell"].replace(" ", "_").replace("@", "_")
    assert outputs[second] == outputs["B"]  # an untouched cell transplants nothing


def test_the_model_is_b_again_bit_for_bit(checked) -> None:
    model, before, _ = checked
    assert all(torch.equal(p, before[name]) for name, p in model.named_parameters())


def test_summary_says_whether_accuracy_agrees(checked) -> None:
    _, _, result = checked
    said = result.summary["accuracy"]
    assert said["benchmark"] == "organism-math" and said["top"] == 2 and len(said["cells"]) == 6
    assert set(said["agreement"]) == {"transplant", "zero"}
    assert said["agreement"]["transplant"]["text"].startswith("transplant: the map's top cell o@2 has accuracy")


def test_cli_writes_accuracy_csv_and_the_runs(planted_pair, probe_file, tmp_path) -> None:
    base, tuned = planted_pair
    out = tmp_path / "map"
    result = CliRunner().invoke(main, ["map", str(base), str(tuned), "--out", str(out), "--probe", str(probe_file), "--kinds", "o",
                                       "--modes", "transplant", "--no-plots", "--accuracy", "organism-math", "--top", "1",
                                       "--accuracy-limit", "2", "--accuracy-max-new-tokens", "4"])
    assert result.exit_code == 0, result.output
    assert "accuracy transplant: the map's top cell o@2" in result.output
    lines = (out / "accuracy.csv").read_text().splitlines()
    assert lines[0].startswith("cell,mode,kind,layers,map_rank") and [line.split(",")[0] for line in lines[1:]] == ["B", "R", "transplant o@2"]
    for folder in ("B", "R", "transplant_o_2"):
        samples = (out / "accuracy" / folder / "samples.jsonl").read_text().splitlines()
        assert len(samples) == 2 and "output" in json.loads(samples[0])
        assert json.loads((out / "accuracy" / folder / "summary.json").read_text())["benchmark"] == "organism-math"
    summary = json.loads((out / "summary.json").read_text())
    assert [cell["cell"] for cell in summary["accuracy"]["cells"]] == ["B", "R", "transplant o@2"]
    assert summary["accuracy"]["cells"][0]["map_rank"] is None


def test_bad_accuracy_requests_are_refused_at_once_before_any_model_loads(planted_pair, monkeypatch) -> None:
    base, tuned = planted_pair
    monkeypatch.setattr("sfn.experiments.maps._loaded", lambda *a: pytest.fail("a model was loaded"))
    with pytest.raises(SfnErrors) as error:
        make_map(base, tuned, top=2, accuracy_settings={"limit": 3}, progress=False)
    assert "--top N needs --accuracy BENCH" in str(error.value) and "(limit) need --accuracy BENCH" in str(error.value)
    with pytest.raises(SfnErrors) as error:
        make_map(base, tuned, modes=["transplant", "melt"], accuracy="organism-mathh", top=0,
                 accuracy_settings={"limit": 0, "backend": "vllm"}, progress=False)
    text = str(error.value)
    for expected in ("'melt'", "unknown benchmark 'organism-mathh'", "--top must be at least 1", "(--accuracy-limit)",
                     "settings backend are not for the map"):
        assert expected in text, expected
    with pytest.raises(SfnErrors, match="this map has none"):
        make_map(base, tuned, modes=[], alpha_curve="o", accuracy="organism-math", progress=False)
    refused = CliRunner().invoke(main, ["map", str(base), str(tuned), "--out", str(base.parent / "m"), "--top", "2"])
    assert refused.exit_code == 2 and "--top N needs --accuracy" in refused.output and not (base.parent / "m").exists()
