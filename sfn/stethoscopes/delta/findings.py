"""Plain-language findings about how the kinds changed: one comparing sentence, and clamp notes."""

from __future__ import annotations

import math

import pandas as pd

from sfn.stethoscopes.delta.heads import top_heads


def o_heads(heads: pd.DataFrame) -> pd.DataFrame:
    """Per layer, the fewest o heads that carry half of the layer's o change (`heads`, `share`, `of`)."""
    if heads.empty:
        return pd.DataFrame(columns=["layer", "heads", "share", "of"])
    return top_heads(heads, "o", 0.5)


def _layer_span(layers: list[int]) -> str:
    layers = sorted(layers)
    if len(layers) > 1 and layers == list(range(layers[0], layers[-1] + 1)):
        return f"layers {layers[0]}-{layers[-1]}"
    return ("layer " if len(layers) == 1 else "layers ") + ", ".join(map(str, layers))


def _heads_clause(heads: pd.DataFrame) -> str | None:
    """'half of o's change lies in 2 of 16 heads in layers 10-14' (the layers where it is most concentrated)."""
    top = o_heads(heads)
    if top.empty:
        return None
    counts = top["heads"].map(len)
    fewest = int(counts.min())
    of = int(top["of"].iloc[0])
    if of < 2:
        return None
    where = _layer_span(top.loc[counts == fewest, "layer"].tolist())
    median = float(counts.median())
    return (f"half of o's change lies in {fewest} of {of} heads in {where} "
            f"(a median of {median:g} heads per layer)")


def shape_sentence(summary: pd.DataFrame, heads: pd.DataFrame) -> str:
    """One sentence comparing the kinds on sparsity, rank, base subspace and head concentration."""
    layered = summary[summary["layers"] > 0] if "layers" in summary else summary
    if layered.empty or "median_changed_share" not in layered:
        return ""
    clauses = []
    by_changed = layered.dropna(subset=["median_changed_share"]).sort_values("median_changed_share")
    if len(by_changed):
        low, high = by_changed.iloc[0], by_changed.iloc[-1]
        if low["kind"] == high["kind"]:
            clauses.append(f"{low['kind']} changed {low['median_changed_share']:.1%} of its elements")
        elif high["median_changed_share"] - low["median_changed_share"] < 5e-4:
            # A dense update (every element moved, as full-precision fine-tunes do): naming a fewest
            # and a most that print the same share would only look like a difference.
            floor = math.floor(low["median_changed_share"] * 1e4) / 1e2  # rounded down: never "at least 100%"
            clauses.append(f"every kind changed at least {floor:.2f}% of its elements (median over layers)")
        else:
            clauses.append(f"{low['kind']} changed the fewest elements ({low['median_changed_share']:.1%}, median over "
                           f"layers) and {high['kind']} the most ({high['median_changed_share']:.1%})")
    if "median_stable_rank" in layered:
        ranked = layered.dropna(subset=["median_stable_rank"]).sort_values("median_stable_rank")
        if len(ranked):
            low = ranked.iloc[0]
            rest = f", against {ranked.iloc[-1]['median_stable_rank']:.1f} for {ranked.iloc[-1]['kind']}" if len(ranked) > 1 else ""
            clauses.append(f"{low['kind']} in the lowest-rank way (median stable rank {low['median_stable_rank']:.1f}{rest})")
    if "median_base_subspace_share" in layered:
        inside = layered.dropna(subset=["median_base_subspace_share"]).sort_values("median_base_subspace_share")
        if len(inside):
            top = inside.iloc[-1]
            clauses.append(f"{top['kind']} most inside the base's top-64 directions "
                           f"({top['median_base_subspace_share']:.0%} of its change)")
    clause = _heads_clause(heads)
    if clause:
        clauses.append(clause)
    if not clauses:
        return ""
    text = clauses[0] if len(clauses) == 1 else "; ".join(clauses[:-1]) + "; " + clauses[-1]
    return text[0].upper() + text[1:] + "."


def clamp_notes(summary: pd.DataFrame) -> list[str]:
    """Kinds whose histograms look bimodal only under the paper's clamping (piles at the clip ends)."""
    if "clamp_bimodal_layers" not in summary:
        return []
    notes = []
    for _, row in summary.iterrows():
        layers = max(int(row["layers"]), 1)
        piles, real = int(row["clamp_bimodal_layers"]), int(row["bimodal_layers"])
        if piles > real and piles / layers > 0.5:
            share = row.get("median_edge_share", math.nan)
            notes.append(
                f"{row['kind']} looks bimodal under the paper's clamping in {piles} of {layers} layers but is bimodal "
                f"in {real}: its tallest clamped bars are piles at the clip ends (median edge_share {share:.1%}), not a second mode"
            )
    return notes
