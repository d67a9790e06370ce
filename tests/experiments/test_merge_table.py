"""What the Merge table and its exported samples keep of an evaluation."""

import contextlib

import pandas as pd

from sfn.experiments.merge_table import SAMPLE_COLUMNS, export_columns, merge_row


def test_exported_samples_keep_every_extracted_answer_and_verdict():
    columns = [*SAMPLE_COLUMNS, "prompt", "sample", "evidence", "extracted", "extracted_strict", "correct_strict",
               "extracted_flexible_lm_eval", "correct_flexible_lm_eval", "thinking_tokens"]
    kept = export_columns(pd.DataFrame(columns=columns))
    assert kept == [*SAMPLE_COLUMNS, "sample", "extracted", "extracted_strict", "correct_strict",
                    "extracted_flexible_lm_eval", "correct_flexible_lm_eval"]
    # One sample per problem and no extra metric: the fixed columns and the answer.
    assert export_columns(pd.DataFrame(columns=[*SAMPLE_COLUMNS, "extracted"])) == [*SAMPLE_COLUMNS, "extracted"]


def test_merge_row_carries_the_solved_problems_for_the_floor():
    summary = {"accuracy": 0.3, "accuracy_ci95": [0.2, 0.4], "mean_output_tokens": 12.0, "samples": 40, "problems": 10,
               "problems_solved": 3, "levels": {"III": 28, "IV": 12}}
    row = merge_row("B + R's o", "o", summary)
    assert (row["samples"], row["problems"], row["problems_solved"]) == (40, 10, 3)
    assert (row["level_I"], row["level_III"], row["level_IV"]) == (0, 28, 12)


class InPlaceEngine:
    """An engine over B whose weights switch in place, as a vLLM engine's do (`VLLMBackend.variant`),
    built on the hf backend: what merge_table_in_engine asks of an engine, without vLLM."""

    def __init__(self, source):
        from sfn.eval.backends.hf import HFBackend
        from sfn.io.load_model import load_model

        self.base_source = str(source)
        self.backend = HFBackend(*load_model(source), batch_size=8)
        self.tokenizer, self.switched = self.backend.tokenizer, []

    def generate(self, *args, **kwargs):
        return self.backend.generate(*args, **kwargs)

    @contextlib.contextmanager
    def variant(self, tensors):
        state = self.backend.model.state_dict()
        saved = {}
        for name, tensor in tensors:
            saved[name] = state[name].clone()
            state[name].copy_(tensor)
        self.switched.append(sorted(saved))
        try:
            yield list(saved)
        finally:
            for name, tensor in saved.items():
                state[name].copy_(tensor)


def test_the_table_from_one_engine_equals_the_table_from_loaded_models(tmp_path):
    import torch

    from sfn.experiments.merge_table import merge_table, merge_table_in_engine
    from sfn.io.load_model import load_model
    from sfn.organism.benchmark import SHIPPED_DIR, organism_math

    evaluation = dict(benchmark=organism_math(), prompt_format="plain", limit=6, max_new_tokens=48, grade_levels=False,
                      progress=False)
    base, tokenizer = load_model(SHIPPED_DIR / "base")
    tuned, _ = load_model(SHIPPED_DIR / "tuned")
    loaded = merge_table(base, tuned, tokenizer, evaluation, None, tmp_path / "loaded")
    engine = InPlaceEngine(SHIPPED_DIR / "base")
    before = {name: tensor.clone() for name, tensor in engine.backend.model.state_dict().items()}
    switched = merge_table_in_engine(engine, SHIPPED_DIR / "tuned", evaluation, None, tmp_path / "engine")

    pd.testing.assert_frame_equal(switched.table, loaded.table)
    pd.testing.assert_frame_equal(switched.samples, loaded.samples)
    outputs = loaded.samples.groupby("variant", sort=False)["output"].apply(tuple)
    assert len(set(outputs)) == len(outputs)  # every variant answers differently: a wrong switch would show
    # Four switches (three merges and all of R), none for B; each o switch is exactly the o tensors.
    assert len(engine.switched) == 4
    assert engine.switched[0] == sorted(f"model.layers.{i}.self_attn.o_proj.weight" for i in range(6))
    assert all(torch.equal(before[name], tensor) for name, tensor in engine.backend.model.state_dict().items())


def test_an_engine_that_cannot_switch_weights_is_refused(tmp_path):
    import pytest

    from sfn.errors import SfnError
    from sfn.experiments.merge_table import merge_table_in_engine

    with pytest.raises(SfnError, match="has no variant, base_source"):
        merge_table_in_engine(object(), "tuned", {}, None, tmp_path)
    assert not tmp_path.joinpath("merge.csv").exists()
