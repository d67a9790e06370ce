"""Verdicts written from the numbers: per stethoscope, what was found, what it supports, how strongly.

Strength is judged by simple, stated rules (shares of layers, non-overlapping 95% Wilson intervals,
number of prompts), so a reader can check every sentence against the tables beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from sfn.eval.stats import FLOOR_SOLVED, wilson_interval

FLUENT_LEVELS = ("III", "IV")


@dataclass(frozen=True)
class Verdict:
    stethoscope: str
    finding: str  # what the numbers show, with the numbers
    supports: str  # what that supports (or does not)
    strength: str  # strong, moderate, weak or none, with the rule that decided it


def _percent(value: float) -> str:
    return f"{100 * value:.0f}%"


def _interval(accuracy: float, samples: int) -> tuple[float, float]:
    return wilson_interval(round(accuracy * samples), samples)


def _row_interval(row: pd.Series) -> tuple[float, float]:
    # The evaluation's own interval when the table carries it: with several samples per problem it
    # is a bootstrap over problems, which a Wilson interval over all samples would understate.
    if "accuracy_low" in row and "accuracy_high" in row and pd.notna(row["accuracy_low"]):
        return float(row["accuracy_low"]), float(row["accuracy_high"])
    return _interval(row["accuracy"], int(row["samples"]))


def _problems_solved(row: pd.Series) -> int:
    # Problems with at least one correct sample, as the evaluation counted them; a table without the
    # column has one sample per problem, so its correct samples are its solved problems.
    if "problems_solved" in row and pd.notna(row["problems_solved"]):
        return int(row["problems_solved"])
    return round(row["accuracy"] * int(row["samples"]))


def delta_verdict(ranking: pd.DataFrame) -> Verdict:
    """Which kind moved most, in how many layers it leads, and whether its changes are bimodal."""
    layered = ranking[ranking["layers"] > 0].sort_values("mean_rel_norm", ascending=False)
    if layered.empty:
        return Verdict("Delta", "no per-layer modules were compared", "nothing", "none")
    leader = layered.sort_values(["first_in_layers", "mean_rel_norm"], ascending=False).iloc[0]
    layers = int(leader["layers"])
    first, bimodal = int(leader["first_in_layers"]), int(leader["bimodal_layers"])
    others = layered[layered["kind"] != leader["kind"]]
    ratio = leader["mean_rel_norm"] / others["mean_rel_norm"].max() if len(others) and others["mean_rel_norm"].max() > 0 else float("inf")
    unlayered = ranking[ranking["layers"] == 0]["kind"].tolist()
    # The table ranks every kind by its mean; the finding compares the kinds of the layers only, layer
    # by layer, so a whole-model tensor (head, embeddings) ranking above them in the table is no contradiction.
    finding = (f"Of the modules inside the layers, {leader['kind']} has the largest relative change in {first} of "
               f"{layers} layers, and its histogram of element-wise change is bimodal in {bimodal} of {layers} layers; "
               f"its mean relative change is {ratio:.2f}x that of the next layer kind, "
               f"{others.iloc[0]['kind'] if len(others) else '-'}")
    if unlayered:
        finding += f"; the table also ranks {', '.join(unlayered)}, which belong to no layer"
    share = first / layers if layers else 0.0
    if share >= 0.75 and ratio >= 1.5:
        strength = f"strong (leads in {_percent(share)} of layers, {ratio:.2f}x the next kind)"
    elif share >= 0.5:
        strength = f"moderate (leads in {_percent(share)} of layers)"
    else:
        strength = f"weak (leads in only {_percent(share)} of layers)"
    if leader["kind"] == "o":
        supports = "the paper's observation that fine-tuning for reasoning changes o_proj most"
    else:
        supports = f"a different picture from the paper's: {leader['kind']}, not o, changed most"
    return Verdict("Delta", finding, supports, strength)


def merge_verdict(merge: pd.DataFrame) -> Verdict:
    """How much of R's accuracy each single-kind merge brings to B, and whether it is distinguishable."""
    rows = {row["variant"]: row for _, row in merge.iterrows()}
    base, tuned = rows["B"], rows["R"]
    merges = merge[~merge["variant"].isin(["B", "R"])]
    base_high = _row_interval(base)[1]
    gap = tuned["accuracy"] - base["accuracy"]
    parts, above = [], []
    for _, row in merges.iterrows():
        low = _row_interval(row)[0]
        change = 100 * (row["accuracy"] - base["accuracy"])
        closed = f" ({change:+.0f} points vs B" + (f", {_percent(change / 100 / gap)} of the B-R gap)" if change > 0 < gap else ")")
        level_one = int(row.get("level_I", 0))
        parts.append(f"{row['variant']} {_percent(row['accuracy'])}{closed}"
                     + (f", {level_one}/{int(row['samples'])} outputs nonsense (level I)" if level_one else ""))
        if low > base_high:
            above.append(row["variant"])
    finding = (f"B answers {_percent(base['accuracy'])} correctly and R {_percent(tuned['accuracy'])}; "
               + "; ".join(parts))
    best = merges.sort_values("accuracy", ascending=False).iloc[0] if len(merges) else None
    solved = max(_problems_solved(row) for _, row in merge.iterrows())
    if solved < FLOOR_SOLVED:
        # Even the best variant is at the floor: no difference between them can show.
        finding += f"; floor: no variant solves more than {solved} problems, so this benchmark cannot rank them"
        return Verdict("Merge", finding, "nothing: the benchmark is too hard for these models", "none (floor)")
    if above:
        supports = f"{', '.join(above)} carries part of R's ability into B without any training"
        strength = "strong (95% intervals of the merge and of B do not overlap)"
    elif best is not None and best["accuracy"] > base["accuracy"]:
        supports = f"at most a hint that {best['variant']} carries some of R's ability"
        strength = "weak (its 95% interval overlaps B's)"
    else:
        supports = "no single merged kind improves on B here"
        strength = "none"
    return Verdict("Merge", finding, supports, strength)


REMOVED_KIND = "whole layer"  # `remove` drops every module of the layers at once


def destruction_levels(destruction: pd.DataFrame) -> pd.DataFrame:
    """Per (kind, method, layer range): prompts, counts of each level, share fluent (III/IV) and share
    correct (IV). `condition` names the column of the level map: the method, with the layer range
    when the table destroys more than one."""
    damaged = destruction[destruction["method"] != "none"]
    if "layers" not in damaged:
        damaged = damaged.assign(layers="")
    several_ranges = damaged["layers"].nunique() > 1
    rows = []
    for (kind, method, layers), group in damaged.groupby(["kind", "method", "layers"], sort=False):
        counts = group["level"].value_counts()
        rows.append({"kind": REMOVED_KIND if method == "remove" else kind, "method": method, "layers": layers,
                     "condition": f"{method} {layers}" if several_ranges else method, "prompts": len(group),
                     **{f"level_{level}": int(counts.get(level, 0)) for level in ("I", "II", "III", "IV")},
                     "fluent_share": float(group["level"].isin(FLUENT_LEVELS).mean()),
                     "correct_share": float((group["level"] == "IV").mean())})
    return pd.DataFrame(rows)


def destruction_verdict(destruction: pd.DataFrame, layers: str) -> Verdict:
    """Which kinds the model can lose (zero and reinit alike) and still talk, and still reason.

    With several layer ranges each is judged on its own; a range that leaves no kind fluent says
    only that it is too wide, so the supported claim comes from the ranges where some kind survives.
    """
    levels = destruction_levels(destruction)
    if levels.empty:
        return Verdict("Destruction", "nothing was destroyed", "nothing", "none")
    undamaged = destruction[destruction["method"] == "none"]
    ranges = list(dict.fromkeys(levels["layers"]))
    parts, informative, harmless_everywhere, breaking_somewhere = [], [], None, set()
    for layer_range in ranges:
        by_kind = (levels[levels["layers"] == layer_range].groupby("kind", sort=False)
                   .agg(fluent=("fluent_share", "min"), correct=("correct_share", "min")))
        harmless = [kind for kind, row in by_kind.iterrows() if row["fluent"] >= 0.5]
        breaking = [kind for kind, row in by_kind.iterrows() if row["fluent"] < 0.5]
        kept = [kind for kind, row in by_kind.iterrows() if row["correct"] >= 0.5]
        where = f"layers {layer_range}" if len(ranges) > 1 else f"with layers {layers}"
        parts.append(f"{where} destroyed (zero and reinit), outputs stay fluent and on topic (III/IV) for "
                     f"{', '.join(harmless) or 'no kind'}; they fall to I/II for {', '.join(breaking) or 'no kind'}; "
                     f"answers stay correct (IV) for {', '.join(kept) or 'no kind'}")
        if harmless or len(ranges) == 1:
            informative.append(layer_range)
            harmless_everywhere = [k for k in harmless if harmless_everywhere is None or k in harmless_everywhere]
            breaking_somewhere |= set(breaking)
    finding = "; ".join(parts) + (f" (undamaged: {int((undamaged['level'] == 'IV').sum())}/{len(undamaged)} correct)"
                                  if len(undamaged) else "")
    if not informative:
        supports = "every range destroyed breaks every kind: narrower ranges are needed to tell the kinds apart"
    else:
        needed = [kind for kind in dict.fromkeys(levels["kind"]) if kind in breaking_somewhere]
        scope = "in the middle layers" if len(ranges) == 1 else f"in layers {', '.join(informative)}"
        supports = (f"conversation needs {', '.join(needed)} {scope}" if needed
                    else f"no single kind {scope} is needed for fluent output")
        if len(ranges) > 1 and harmless_everywhere:
            supports += f"; it survives losing {', '.join(harmless_everywhere)} in every one of them"
    prompts = int(levels["prompts"].min())
    strength = f"{'moderate' if prompts >= 20 else 'weak'} ({prompts} prompts per cell: indicative, as in the paper's Table 3)"
    return Verdict("Destruction", finding, supports, strength)


def freeze_verdict(freeze: pd.DataFrame, samples: int) -> Verdict:
    """What each trainable subset reaches after the same short training: held-out loss (which moves
    first) and benchmark accuracy, against training everything."""
    rows = {row["preset"]: row for _, row in freeze.iterrows()}
    accuracy = {preset: float(row["held-out accuracy"]) for preset, row in rows.items()}
    loss = {preset: float(row["held-out loss"]) for preset, row in rows.items()}
    finding = "; ".join(f"{preset} ({_percent(row['share'])} of parameters) held-out loss {loss[preset]:.3f}, "
                        f"accuracy {_percent(accuracy[preset])}" for preset, row in rows.items())
    if not {"emb+head", "emb+head+o", "all"} <= set(rows):
        return Verdict("Freeze", finding, "the comparison needs emb+head, emb+head+o and all", "none")
    reduction = loss["emb+head"] - loss["all"]
    recovered = (loss["emb+head"] - loss["emb+head+o"]) / reduction if reduction > 0 else 0.0
    finding += f"; adding o achieves {_percent(recovered)} of the held-out loss reduction that training everything achieves over emb+head"
    with_o_low = _interval(accuracy["emb+head+o"], samples)[0]
    without_o_high = _interval(accuracy["emb+head"], samples)[1]
    if with_o_low > without_o_high:
        supports = "training o (with norms) on top of embeddings and head teaches the ability"
        strength = f"strong (accuracy 95% intervals on {samples} problems do not overlap)"
    elif recovered >= 0.5:
        supports = "o carries much of what fine-tuning changes: tuning it gets most of the way in held-out loss"
        strength = "moderate (held-out loss of one seed; accuracy intervals overlap)"
    elif recovered > 0.1:
        supports = "training o adds to embeddings and head, but other modules matter as much or more"
        strength = "weak (held-out loss of one seed; accuracy intervals overlap)"
    else:
        supports = "no advantage from training o in this run"
        strength = "none"
    return Verdict("Freeze", finding, supports, strength)


def map_verdict(table: pd.DataFrame, summary: dict, probe: str = "probe") -> Verdict:
    """The single window whose transplant recovers most of the B-R divergence, the kind that does as a
    whole, the most costly zeroing, and whether Delta's change ranks the cells the same way; `table`
    holds the rows of one probe, `probe`."""
    cells = table[(table["mode"] == "transplant") & (table["layers"] != "all")]
    if cells.empty:
        return Verdict("Map", "no transplant cells were mapped", "nothing", "none")
    best = cells.sort_values("recovered_share", ascending=False, kind="stable").iloc[0]
    whole = table[(table["mode"] == "transplant") & (table["layers"] == "all")].sort_values("recovered_share", ascending=False)
    gap = (summary.get("probes") or {}).get(best["probe"], {}).get("kl_tuned_to_base")
    finding = (f"transplanting R's {best['kind']} in layers {best['layers']} alone into B closes "
               f"{_percent(best['recovered_share'])} of the divergence of B from R on R's answers "
               f"(KL(R || B') {best['kl_to_tuned']:.3g}" + (f" against KL(R || B) {gap:.3g}" if gap is not None else "") + " nats/token)")
    if len(whole):
        finding += f"; of whole kinds, {whole.iloc[0]['kind']} closes {_percent(whole.iloc[0]['recovered_share'])}"
    zero = table[(table["mode"] == "zero") & (table["layers"] != "all")]
    if len(zero):
        worst = zero.sort_values("kl_to_base", ascending=False, kind="stable").iloc[0]
        finding += f"; zeroing {worst['kind']} in layers {worst['layers']} moves B furthest ({worst['kl_to_base']:.3g} nats/token)"
    rho = (summary.get("changed_vs_matters") or {}).get(f"transplant/{probe}")
    if rho is not None:
        finding += f"; Delta's relative change and the transplant map rank the cells with Spearman {rho:.2f}"
    share = float(best["recovered_share"])
    if share >= 0.5:
        strength = f"strong (one window closes {_percent(share)}; at least half)"
    elif share >= 0.2:
        strength = f"moderate (one window closes {_percent(share)}; at least a fifth)"
    else:
        strength = f"weak (no single window closes a fifth; the best {_percent(share)})"
    kind = whole.iloc[0]["kind"] if len(whole) else best["kind"]
    supports = ("the paper's claim that o_proj carries the change" if kind == "o"
                else f"a different picture from the paper's: {kind}, not o, carries most of R's change here")
    return Verdict("Map", finding, supports, strength)
