"""`sfn demo` end to end on the organism (small sizes), and its command line."""

from __future__ import annotations

import importlib.util
import json

import pandas as pd
import pytest
from click.testing import CliRunner

from sfn.demo.destruction_stage import middle_layers
from sfn.experiments.merge_table import MERGE_VARIANTS


def test_middle_layers_skip_the_ends():
    assert middle_layers(6) == "1-4"
    assert middle_layers(28) == "4-23"
    assert middle_layers(64) == "10-53"
    assert middle_layers(2) == "0-1"


@pytest.mark.slow
def test_demo_runs_every_stethoscope_and_writes_the_report(demo_dir):
    index = json.loads((demo_dir / "demo.json").read_text())
    assert set(index["seconds"]) == {"delta", "merge", "map", "destruction", "freeze", "total"}
    merge = pd.read_csv(demo_dir / "merge" / "merge.csv")
    assert merge["variant"].tolist() == [label for label, _, _ in MERGE_VARIANTS]
    assert (merge[[f"level_{level}" for level in ("I", "II", "III", "IV")]].sum(axis=1) == merge["samples"]).all()
    destruction = pd.read_csv(demo_dir / "destruction" / "destruction.csv")
    assert {"zero", "reinit", "none"} == set(destruction["method"]) and destruction["level"].notna().all()
    assert {"q", "k", "v", "o", "gate", "up", "down"} <= set(destruction["kind"])
    freeze = pd.read_csv(demo_dir / "freeze" / "compare.csv")
    assert freeze["preset"].tolist() == ["emb+head", "emb+head+o", "emb+head+qkvo", "all"]
    for name in ("norms.png", "heatmap.png", "histograms.png"):
        assert (demo_dir / "delta" / name).is_file()
    mapped = pd.read_csv(demo_dir / "map" / "map.csv")
    assert set(mapped["mode"]) == {"transplant", "zero"} and set(mapped["kind"]) == {"q", "k", "v", "o", "gate", "up", "down"}
    transplant, zero = mapped.query("mode == 'transplant'"), mapped.query("mode == 'zero'")
    assert (transplant["recovered_share"] <= 1).all() and zero["recovered_share"].isna().all() and (zero["kl_to_base"] > 0).all()
    assert (demo_dir / "map" / "map_transplant_probe.png").is_file()
    assert (demo_dir / "report.html").is_file() and (demo_dir / "report.md").is_file()


def test_demo_rejects_half_a_pair(tmp_path):
    from sfn.demo.cli import demo_command

    result = CliRunner().invoke(demo_command, ["--out", str(tmp_path), "--base", "some/model"])
    assert result.exit_code == 2 and "both base (--base) and tuned (--tuned)" in result.output


def test_demo_checks_every_input_before_the_first_stage(tmp_path):
    """A generated pair has no tokenizer; with a missing benchmark file too, both are reported at once,
    before Delta runs and before anything is written."""
    from sfn.demo import run_demo
    from sfn.errors import SfnErrors
    from sfn.synthetic import make_pair

    base, tuned = make_pair(tmp_path / "pair", "tiny", progress=False)
    out = tmp_path / "demo"
    with pytest.raises(SfnErrors) as raised:
        run_demo(out, base=str(base), tuned=str(tuned), benchmark="gsm8k", data=str(tmp_path / "missing.jsonl"),
                 train_data=str(tmp_path / "train.jsonl"))
    text = str(raised.value)
    assert "has no tokenizer" in text and "missing.jsonl does not exist" in text and "train.jsonl does not exist" in text, text
    assert not out.exists()


def test_demo_refuses_a_pair_of_two_architectures(tmp_path):
    from sfn.demo.checks import check_custom_pair
    from sfn.errors import SfnErrors
    from sfn.synthetic import make_pair

    base, _ = make_pair(tmp_path / "a", "tiny", progress=False)
    tuned_dir = tmp_path / "a" / "tuned"
    # Same architecture, one tensor dropped from R: the pair no longer shares its tensors.
    from safetensors.torch import load_file, save_file

    weights = load_file(tuned_dir / "model.safetensors")
    weights.pop(sorted(weights)[0])
    save_file(weights, tuned_dir / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(SfnErrors, match="do not share their tensors"):
        check_custom_pair(str(base), str(tuned_dir), "organism-math", None, None, "plain")


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_demo_refuses_the_vllm_backend_without_vllm_before_any_stage(tmp_path):
    from sfn.demo.cli import demo_command

    out = tmp_path / "demo"
    result = CliRunner().invoke(demo_command, ["--out", str(out), "--backend", "vllm", "--backend-arg", "dtype=float32"])
    assert result.exit_code == 2 and "vLLM is not installed here" in result.output and "install_vllm_cpu.sh" in result.output
    assert not out.exists()


def test_demo_engine_settings_need_the_vllm_backend(tmp_path):
    from sfn.demo.cli import demo_command

    result = CliRunner().invoke(demo_command, ["--out", str(tmp_path / "demo"), "--backend-arg", "dtype=float32"])
    assert result.exit_code == 2 and "engine settings are for backend='vllm' (--backend vllm)" in result.output, result.output
    assert not (tmp_path / "demo").exists()


def test_the_merge_commands_evaluate_with_the_stages_backend(tmp_path):
    from sfn.demo.commands import backend_words, merge_commands
    from sfn.demo.pair import organism_pair
    from sfn.demo.run import DemoSettings

    pair = organism_pair(tmp_path)
    evaluation = DemoSettings().evaluation(pair)
    engine = backend_words("vllm", {"dtype": "float32", "enforce_eager": True})
    assert engine == ["--backend", "vllm", "--backend-arg", "dtype=float32", "--backend-arg", "enforce_eager=True"]
    merge, evaluate = merge_commands(pair, evaluation, tmp_path, "B + R's o", "base", "o", single_thread=False, backend=engine)
    assert "--backend" not in merge and evaluate.endswith("--backend vllm --backend-arg dtype=float32 --backend-arg enforce_eager=True")
    assert backend_words("hf", {}) == []
