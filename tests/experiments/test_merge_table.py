"""What the Merge table and its exported samples keep of an evaluation."""

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
