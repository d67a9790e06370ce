"""Verdicts are written from the numbers: each rule on small hand-made tables."""

from __future__ import annotations

import pandas as pd

from sfn.report.verdicts import (
    delta_verdict,
    destruction_levels,
    destruction_verdict,
    freeze_verdict,
    merge_verdict,
)


def ranking(first_o: int, bimodal_o: int, layers: int = 28, o_mean: float = 3e-3) -> pd.DataFrame:
    return pd.DataFrame([
        {"rank": 1, "kind": "o", "mean_rel_norm": o_mean, "median_rel_norm": o_mean, "layers": layers,
         "first_in_layers": first_o, "bimodal_layers": bimodal_o},
        {"rank": 2, "kind": "q", "mean_rel_norm": 1e-3, "median_rel_norm": 1e-3, "layers": layers,
         "first_in_layers": layers - first_o, "bimodal_layers": 0},
        {"rank": 3, "kind": "embed", "mean_rel_norm": 5e-4, "median_rel_norm": 5e-4, "layers": 0,
         "first_in_layers": 0, "bimodal_layers": 0},
    ])


def test_delta_verdict_states_the_counts_and_grades_them():
    strong = delta_verdict(ranking(27, 24))
    assert "o has the largest relative change in 27 of 28 layers" in strong.finding
    assert "bimodal in 24 of 28 layers" in strong.finding and "3.00x that of the next layer kind, q;" in strong.finding
    assert strong.finding.endswith("; the table also ranks embed, which belong to no layer")
    assert strong.strength.startswith("strong") and "o_proj" in strong.supports
    assert delta_verdict(ranking(15, 3, o_mean=1.1e-3)).strength.startswith("moderate")
    other = delta_verdict(ranking(5, 0, o_mean=1.1e-3))
    assert "q has the largest relative change in 23 of 28 layers" in other.finding and "q, not o" in other.supports
    assert "1.05x that of the next layer kind" in delta_verdict(ranking(27, 24, o_mean=1.046e-3)).finding  # not "1.0x"
    split = ranking(10, 0, o_mean=1.1e-3)
    split.loc[2, ["layers", "first_in_layers"]] = [28, 9]  # a third kind leads in some layers
    split.loc[1, "first_in_layers"] = 9
    assert delta_verdict(split).strength.startswith("weak")


def merge_table(o_accuracy: float, samples: int = 64) -> pd.DataFrame:
    rows = [("B", 0.1), ("B + R's o", o_accuracy), ("B + R's q,k,v", 0.05), ("B + R's mlp", 0.0), ("R", 0.9)]
    return pd.DataFrame([{"variant": name, "accuracy": value, "samples": samples, "level_I": 40 if "mlp" in name else 0}
                         for name, value in rows])


def test_merge_verdict_needs_separated_intervals_to_call_it_strong():
    strong = merge_verdict(merge_table(0.5))
    assert strong.strength.startswith("strong") and "B + R's o" in strong.supports
    assert "B + R's o 50% (+40 points vs B, 50% of the B-R gap)" in strong.finding and "40/64 outputs nonsense" in strong.finding
    assert merge_verdict(merge_table(0.15)).strength.startswith("weak")
    assert merge_verdict(merge_table(0.1)).strength == "none"


def test_destruction_verdict_separates_harmless_from_breaking_kinds():
    rows = [{"method": "none", "kind": "-", "prompt": 0, "level": "IV"}]
    for method in ("zero", "reinit"):
        rows += [{"method": method, "kind": "q", "prompt": p, "level": "III"} for p in range(4)]
        rows += [{"method": method, "kind": "mlp", "prompt": p, "level": "I"} for p in range(4)]
    frame = pd.DataFrame(rows)
    levels = destruction_levels(frame)
    assert set(levels["kind"]) == {"q", "mlp"} and levels["prompts"].tolist() == [4, 4, 4, 4]
    verdict = destruction_verdict(frame, "1-4")
    assert "stay fluent and on topic (III/IV) for q" in verdict.finding and "fall to I/II for mlp" in verdict.finding
    assert verdict.strength.startswith("weak (4 prompts")


def test_destruction_levels_split_layer_ranges_and_name_removed_layers():
    rows = [{"method": "none", "kind": "-", "layers": "all", "prompt": 0, "level": "III"}]
    for layers, level in (("2-14", "III"), ("15-27", "I")):
        rows += [{"method": "zero", "kind": "o", "layers": layers, "prompt": p, "level": level} for p in range(3)]
        rows += [{"method": "remove", "kind": "-", "layers": layers, "prompt": p, "level": "II"} for p in range(3)]
    levels = destruction_levels(pd.DataFrame(rows))
    assert levels["condition"].tolist() == ["zero 2-14", "remove 2-14", "zero 15-27", "remove 15-27"]
    assert levels["kind"].tolist() == ["o", "whole layer", "o", "whole layer"]
    assert levels["level_III"].tolist() == [3, 0, 0, 0] and levels["level_I"].tolist() == [0, 0, 3, 0]
    one_range = destruction_levels(pd.DataFrame([row for row in rows if row["layers"] in ("all", "2-14")]))
    assert one_range["condition"].tolist() == ["zero", "remove"]


def test_destruction_verdict_judges_each_range_and_skips_ranges_that_break_everything():
    rows = [{"method": "none", "kind": "-", "layers": "all", "prompt": 0, "level": "III"}]
    cells = {("2-14", "o"): "I", ("2-14", "q"): "I", ("5-7", "o"): "III", ("5-7", "q"): "III",
             ("14-16", "o"): "III", ("14-16", "q"): "II"}
    for (layers, kind), level in cells.items():
        rows += [{"method": m, "kind": kind, "layers": layers, "prompt": p, "level": level}
                 for m in ("zero", "reinit") for p in range(3)]
    verdict = destruction_verdict(pd.DataFrame(rows), "2-14, 5-7, 14-16")
    assert "layers 2-14 destroyed (zero and reinit), outputs stay fluent and on topic (III/IV) for no kind" in verdict.finding
    assert "layers 14-16 destroyed (zero and reinit), outputs stay fluent and on topic (III/IV) for o; they fall to I/II for q" in verdict.finding
    assert verdict.supports == "conversation needs q in layers 5-7, 14-16; it survives losing o in every one of them"
    broken = pd.DataFrame([row for row in rows if row["layers"] in ("all", "2-14")])
    assert destruction_verdict(broken, "2-14").supports == "conversation needs o, q in the middle layers"


def test_freeze_verdict_compares_o_with_embeddings_and_everything():
    table = pd.DataFrame([
        {"preset": "emb+head", "share": 0.1, "held-out accuracy": 0.05, "held-out loss": 0.9},
        {"preset": "emb+head+o", "share": 0.2, "held-out accuracy": 0.6, "held-out loss": 0.5},
        {"preset": "emb+head+qkvo", "share": 0.4, "held-out accuracy": 0.7, "held-out loss": 0.4},
        {"preset": "all", "share": 1.0, "held-out accuracy": 0.85, "held-out loss": 0.3},
    ])
    verdict = freeze_verdict(table, 64)
    assert verdict.strength.startswith("strong") and "67% of the held-out loss reduction" in verdict.finding
    table["held-out accuracy"] = 0.05
    assert freeze_verdict(table, 64).strength.startswith("moderate")
    table.loc[1, "held-out loss"] = 0.85
    assert freeze_verdict(table, 64).strength == "none"


def test_merge_verdict_at_the_floor_ranks_nothing():
    import pandas as pd

    from sfn.report.verdicts import merge_verdict

    rows = [{"variant": variant, "accuracy": solved / 50, "accuracy_low": 0.0, "accuracy_high": 0.1, "samples": 50,
             "level_I": 0} for variant, solved in (("B", 1), ("B + R's o", 4), ("R", 3))]
    verdict = merge_verdict(pd.DataFrame(rows))
    assert verdict.strength == "none (floor)" and "cannot rank" in verdict.finding


def test_merge_verdict_floor_counts_solved_problems_not_correct_samples():
    import pandas as pd

    from sfn.report.verdicts import merge_verdict

    # 50 problems, 4 samples each: R's 12 correct samples are 3 problems solved every time.
    rows = [{"variant": variant, "accuracy": correct / 200, "accuracy_low": 0.01, "accuracy_high": 0.1, "samples": 200,
             "problems": 50, "problems_solved": solved, "level_I": 0}
            for variant, correct, solved in (("B", 4, 1), ("B + R's o", 8, 2), ("R", 12, 3))]
    verdict = merge_verdict(pd.DataFrame(rows))
    assert verdict.strength == "none (floor)" and "no variant solves more than 3 problems" in verdict.finding
    # Without the column (an older table, one sample per problem) the correct samples are the solved problems.
    assert merge_verdict(pd.DataFrame(rows).drop(columns="problems_solved")).strength != "none (floor)"
