"""The columns of the Delta stethoscope's table (`delta.csv`): what `compute` fills, `summary` writes
and `spectral` returns, in one place (and free of torch, which only `--spectral` needs)."""

RESULT_COLUMNS = [
    "layer",
    "kind",
    "abs_norm",
    "rel_norm",
    "base_norm",
    "tuned_norm",
    "cosine",
    "max_abs_delta",
    "r_mean",
    "r_std",
    "clipped_share",
    "bimodality_coef",
    "centre_share",
    "bimodal",
    "changed_share",
    "moved_share",
    "edge_share",
    "clamped_bimodality_coef",
    "clamp_bimodal",
    "nonfinite",
    "numel",
    "tensors",
    "note",
    "histogram",
    "clamped_histogram",
]
# per 2-D weight, with `spectral` (`sfn.stethoscopes.delta.spectral.spectral_stats`); before `numel`
SPECTRAL_COLUMNS = ["sv1_share", "energy_at_8", "energy_at_64", "stable_rank", "base_subspace_share"]
