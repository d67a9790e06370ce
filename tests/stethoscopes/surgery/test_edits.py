"""`merge_edits` and `destroy_edits`: only the changed tensors, with the values `merge` and `destroy` write."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sfn.errors import SfnError
from sfn.stethoscopes.surgery import destroy, merge
from sfn.stethoscopes.surgery.edits import destroy_edits, merge_edits


@pytest.mark.parametrize("arch", ["llama", "phi3"])
def test_merge_edits_are_the_tensors_merge_changes(model_pair, load_tensors, tmp_path: Path, arch: str) -> None:
    base, donor = model_pair(arch)
    # phi3 fuses q, k and v into one tensor: "o,q@1" takes a whole tensor and a slice of another
    merge(base, donor, "o,q@1", tmp_path / "merged")
    written, original = load_tensors(tmp_path / "merged"), load_tensors(base)
    changed = {name for name in written if not torch.equal(written[name], original[name])}
    edits = dict(merge_edits(base, donor, "o,q@1"))
    assert set(edits) == changed and changed
    for name, tensor in edits.items():
        assert torch.equal(tensor, written[name]), name


@pytest.mark.parametrize("method", ["zero", "reinit"])
def test_destroy_edits_are_the_tensors_destroy_changes(model_pair, load_tensors, tmp_path: Path, method: str) -> None:
    base, _ = model_pair("llama")
    destroy(base, "q,down@1-2", tmp_path / "destroyed", method=method, seed=3)
    written = load_tensors(tmp_path / "destroyed")
    edits = dict(destroy_edits(base, "q,down@1-2", method, seed=3))
    assert sorted(edits) == sorted(f"model.layers.{i}.{m}.weight" for i in (1, 2) for m in ("self_attn.q_proj", "mlp.down_proj"))
    for name, tensor in edits.items():
        assert torch.equal(tensor, written[name]), name


def test_layer_removal_is_refused_before_reading_anything(model_pair) -> None:
    base, _ = model_pair("llama")
    with pytest.raises(SfnError, match="sfn destroy"):
        next(destroy_edits(base, "all@1", "remove"))
