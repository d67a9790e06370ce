"""Every function that takes a model takes a path or a loaded model (or a state dict) alike."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from tiny_models import perturb_copy

import sfn
from sfn.errors import SfnError
from sfn.io import open_checkpoint
from sfn.io.sources import ModelTensors, opened, weight_files


@pytest.fixture(scope="module")
def pair(tiny_model_dir, tmp_path_factory) -> tuple[Path, Path]:
    """The tiny Llama as base and a copy whose o_proj and MLPs moved (a planted, deterministic change)."""
    base = tiny_model_dir("llama")

    def move(name: str, tensor: torch.Tensor) -> torch.Tensor | None:
        if "o_proj" in name or "mlp" in name:
            generator = torch.Generator().manual_seed(len(name))
            return tensor + 0.01 * torch.randn(tensor.shape, generator=generator)
        return None

    return base, perturb_copy(base, tmp_path_factory.mktemp("tuned"), move)


def _loaded(path: Path) -> torch.nn.Module:
    model, _ = sfn.load_model(path, with_tokenizer=False)
    return model


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    return {k: v for f in sorted(directory.glob("*.safetensors")) for k, v in load_file(f).items()}


def _assert_same_weights(a: Path, b: Path) -> None:
    left, right = _weights(a), _weights(b)
    assert left.keys() == right.keys()
    for name in left:
        assert torch.equal(left[name], right[name]), name


@pytest.mark.parametrize("arch", ["llama", "gemma", "phi3", "gpt2"])
def test_a_loaded_model_has_the_tensors_of_its_checkpoint(arch, tiny_model_dir):
    directory = tiny_model_dir(arch)
    model = _loaded(directory)
    with open_checkpoint(directory) as on_disk:
        in_memory = ModelTensors(model)
        assert in_memory.tensors().keys() == on_disk.tensors().keys()
        for name, info in on_disk.tensors().items():
            assert in_memory.info(name) == info
            assert torch.equal(in_memory.read(name), on_disk.read(name)), name
        assert in_memory.config["model_type"] == on_disk.config["model_type"]


def test_a_state_dict_counts_a_tied_tensor_once(tiny_model_dir):
    model = _loaded(tiny_model_dir("gemma"))
    state = model.state_dict()
    assert "lm_head.weight" in state  # tied to the embedding: the same storage under two names
    with open_checkpoint(tiny_model_dir("gemma")) as on_disk:
        assert ModelTensors(state).tensors().keys() == on_disk.tensors().keys()


def test_a_loaded_model_has_no_weight_files(tiny_model_dir):
    # Its weights may have been edited in memory since: hashing the files it came from would lie.
    assert weight_files(ModelTensors(_loaded(tiny_model_dir("llama")))) == []


def test_a_model_and_tokenizer_pair_is_refused_with_the_fix(tiny_model_dir):
    with pytest.raises(SfnError, match="pass its first item"):
        with opened((_loaded(tiny_model_dir("llama")), None)):
            pass


def test_modules_of_a_path_a_model_and_a_state_dict(pair):
    base, _ = pair
    model = _loaded(base)
    by_name = lambda r: r.table.sort_values("tensor").reset_index(drop=True)  # noqa: E731 - a loaded model lists in parameter order
    from_path, from_model, from_state = (sfn.modules(m, "o@1-2") for m in (base, model, model.state_dict()))
    pd.testing.assert_frame_equal(by_name(from_path), by_name(from_model))
    pd.testing.assert_frame_equal(by_name(from_path), by_name(from_state))
    assert from_path.summary == from_model.summary
    assert from_path.summary["selected_parts"] == 2
    assert from_path.table.attrs == {}  # metadata lives in .summary, which pandas operations cannot drop
    # A state dict has no config: classified by name patterns, and the result says so.
    assert from_state.summary["generic"] and from_state.notes


def test_delta_of_paths_and_of_loaded_models(pair):
    base, tuned = pair
    from_paths = sfn.delta(base, tuned, progress=False)
    from_models = sfn.delta(_loaded(base), _loaded(tuned), progress=False)
    pd.testing.assert_frame_equal(from_paths.table, from_models.table, check_exact=True)
    assert from_paths.summary == from_models.summary
    assert from_paths.table.attrs == {}
    assert sfn.summarize(from_models).iloc[0]["kind"] in {"o", "gate", "up", "down"}


def test_merge_destroy_and_plugins_of_paths_and_of_loaded_models(pair, tmp_path):
    base, tuned = pair
    base_model, tuned_model = _loaded(base), _loaded(tuned)
    for name, source, donor in (("path", base, tuned), ("model", base_model, tuned_model)):
        sfn.merge(source, donor, "o", tmp_path / f"merge-{name}")
        sfn.destroy(source, "mlp@1", tmp_path / f"destroy-{name}", method="reinit", seed=3)
        sfn.extract_plugin(source, donor, "o,norm", tmp_path / f"plugin-{name}.safetensors")
        sfn.apply_plugin(source, tmp_path / f"plugin-{name}.safetensors", tmp_path / f"applied-{name}")
    for what in ("merge", "destroy", "applied"):
        _assert_same_weights(tmp_path / f"{what}-path", tmp_path / f"{what}-model")
    from_path, from_model = (sfn.read_plugin(tmp_path / f"plugin-{n}.safetensors") for n in ("path", "model"))
    assert from_path.tensors.keys() == from_model.tensors.keys()
    assert all(torch.equal(from_path.tensors[k], from_model.tensors[k]) for k in from_path.tensors)
    merged = _weights(tmp_path / "merge-model")
    assert torch.equal(merged["model.layers.0.self_attn.o_proj.weight"], tuned_model.model.layers[0].self_attn.o_proj.weight)


def test_merged_takes_a_donor_path_or_a_loaded_donor(pair):
    base, tuned = pair
    model = _loaded(base)
    results = []
    for donor in (tuned, _loaded(tuned)):
        with sfn.merged(model, donor, "o"):
            results.append({n: p.detach().clone() for n, p in model.named_parameters() if "o_proj" in n})
    assert results[0].keys() == results[1].keys() and results[0]
    assert all(torch.equal(results[0][n], results[1][n]) for n in results[0])


def test_open_checkpoint_of_a_loaded_model_says_what_to_do(tiny_model_dir):
    # It used to stringify the model into a path: OSError "File name too long".
    with pytest.raises(SfnError, match="takes a loaded one"):
        open_checkpoint(_loaded(tiny_model_dir("llama")))
