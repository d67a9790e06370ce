"""Outputs carry their lineage: hub card metadata (base_model, base_model_relation) and, for a merge,
the mergekit recipe that makes the same tensors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from sfn.stethoscopes.surgery import destroy, merge
from sfn.stethoscopes.surgery.output import ModelOutput, card_data


def _front_matter(readme: Path) -> dict:
    text = readme.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def _meta(lineage: list[str], relation: str | None = None) -> ModelOutput:
    return ModelOutput("merge", {}, {}, None, "", {}, {}, lineage=lineage, relation=relation)


def test_card_names_hub_parents_as_the_hub_reads_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = card_data(_meta(["Qwen/Qwen2.5-Math-1.5B@main", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"], "merge"))
    assert data.base_model == ["Qwen/Qwen2.5-Math-1.5B", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"]
    assert data.base_model_relation == "merge" and data.library_name == "transformers"
    assert card_data(_meta(["org/model-GGUF/model-Q8_0.gguf"])).base_model == "org/model-GGUF"
    assert card_data(_meta([str(tmp_path / "base"), "org/name"], "merge")).base_model == "org/name"
    (tmp_path / "org" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)  # now `org/name` is a local folder, not a hub parent
    data = card_data(_meta([str(tmp_path / "base"), "org/name"], "merge"))
    assert data.base_model is None and data.base_model_relation is None


def _mergekit_linear(recipe: dict, models: dict[str, dict[str, torch.Tensor]], name: str) -> torch.Tensor:
    """mergekit's `linear` for one tensor: each model's weight is its first entry whose filter is
    part of the tensor name (or has no filter); without normalisation, the weighted sum."""

    def weight(entries: list[dict]) -> float:
        return next(entry["value"] for entry in entries if "filter" not in entry or entry["filter"] in name)

    assert recipe["merge_method"] == "linear" and recipe["parameters"] == {"normalize": False}
    return sum(weight(m["parameters"]["weight"]) * models[m["model"]][name] for m in recipe["models"])


def test_merge_writes_card_and_an_equivalent_mergekit_recipe(model_pair, load_tensors, tmp_path: Path) -> None:
    base, donor = model_pair("llama")
    out = merge(base, donor, "o,norm@1", tmp_path / "out").out
    front = _front_matter(out / "README.md")
    assert front["tags"] == ["sfn", "merge"] and "base_model" not in front  # local inputs: no hub lineage
    recipe = yaml.safe_load((out / "mergekit_config.yml").read_text())
    assert recipe["base_model"] == str(base) and recipe["tokenizer_source"] == "base"
    models = {str(base): load_tensors(base), str(donor): load_tensors(donor)}
    written = load_tensors(out)
    assert any(not torch.equal(models[str(base)][n], written[n]) for n in written)
    for name, tensor in written.items():
        assert torch.equal(_mergekit_linear(recipe, models, name), tensor), name


def test_merge_of_fused_parts_writes_no_recipe_mergekit_cannot_follow(model_pair, tmp_path: Path) -> None:
    base, donor = model_pair("phi3")
    out = merge(base, donor, "q", tmp_path / "out").out  # rows of qkv_proj: not a whole tensor
    assert not (out / "mergekit_config.yml").exists()


def test_destroy_card_has_no_merge_relation(model_pair, tmp_path: Path) -> None:
    base, _ = model_pair("llama")
    out = destroy(base, "o@1", tmp_path / "out", method="zero").out
    front = _front_matter(out / "README.md")
    assert "base_model_relation" not in front and front["tags"] == ["sfn", "destroy"]
