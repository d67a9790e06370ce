"""The report's content, independent of format: one section per stethoscope with its verdict, tables,
figures and example outputs. `render.py` writes it as HTML and Markdown."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sfn.plotting import save_figure
from sfn.report.figures import (
    plot_level_map,
    plot_losses,
    plot_merge_levels,
    typical_level,
)
from sfn.report.load import DemoData
from sfn.report.verdicts import (
    Verdict,
    delta_verdict,
    destruction_levels,
    destruction_verdict,
    freeze_verdict,
    map_verdict,
    merge_verdict,
)

EXAMPLE_CHARACTERS = 220


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    levels: list[str | None] = field(default_factory=list)  # per row: a level to colour it by, if any


@dataclass
class Section:
    title: str
    intro: str
    verdict: Verdict | None = None
    tables: list[tuple[str, Table]] = field(default_factory=list)
    figures: list[tuple[str, Path]] = field(default_factory=list)
    commands: list[tuple[str, list[str]]] = field(default_factory=list)  # (what it reproduces, shell commands)
    files: list[tuple[str, str]] = field(default_factory=list)  # (what it holds, path relative to the folder)


def _data_links(data: DemoData, stage: str, files: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """(label, path) of the data files behind a stage that its demo.json entry names."""
    recorded = data.index.get(stage) or {}
    return [(label, recorded[key]) for label, key in files if key in recorded]


def _commands(data: DemoData, stage: str) -> list[tuple[str, list[str]]]:
    """The by-hand commands `sfn demo` recorded for `stage` (none in a folder from before they were)."""
    return list((data.index.get("commands") or {}).get(stage, {}).items())


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= EXAMPLE_CHARACTERS else text[: EXAMPLE_CHARACTERS - 1] + "…"


def pair_section(data: DemoData) -> Section:
    pair, seconds = data.pair, data.index["seconds"]
    rows = [["base (B)", pair["base"]], ["tuned (R)", pair["tuned"]],
            ["architecture", f"{pair['model_type']}, {pair['num_layers']} layers, {pair['parameters']:,} parameters"],
            ["benchmark", pair["benchmark"]]]
    provenance = pair.get("provenance") or {}
    for name, label in (("base", "B"), ("tuned", "R")):
        measured = (provenance.get("heldout_accuracy") or {}).get(name)
        if measured:
            rows.append([f"{label} at build time", f"{measured['accuracy']:.1%} on {measured['samples']} held-out problems"])
    if provenance:
        rows.append(["built", f"seed {provenance['seed']}, sfn {provenance['sfn_version']}, {provenance['build_seconds']:.0f} s"])
    rows.append(["demo time", ", ".join(f"{stage} {value:.0f} s" for stage, value in seconds.items())])
    return Section("The pair", f"Diagnosing {pair['label']}: does R's ability live in particular modules?",
                   tables=[("", Table(["", ""], rows))])


def delta_section(data: DemoData) -> Section:
    ranking = data.delta_ranking
    table = Table(["rank", "kind", "mean relative change", "median", "first in layers", "bimodal layers"],
                  [[str(r["rank"]), r["kind"], f"{r['mean_rel_norm']:.3e}", f"{r['median_rel_norm']:.3e}",
                    f"{r['first_in_layers']}/{r['layers']}" if r["layers"] else "-",
                    f"{r['bimodal_layers']}/{max(r['layers'], 1)}"] for _, r in ranking.iterrows()])
    figures = [(caption, data.delta_figures[name]) for name, caption in (
        ("norms", "Absolute and relative change of each module kind per layer"),
        ("heatmap", "Relative change, layer x module kind"),
        ("histograms", "Histograms of the element-wise relative change"),
        ("heads", "Each attention head's share of its layer's q, k, v and o change"),
    ) if name in data.delta_figures]
    intro = "How far each module of R moved from B, relative to its size."
    return Section("Delta", f"{intro} {data.delta_finding}" if data.delta_finding else intro,
                   delta_verdict(ranking), [("Ranking of module kinds", table)], figures, _commands(data, "delta"),
                   _data_links(data, "delta", (("per layer and module", "table"), ("per kind", "summary"))))


def merge_section(data: DemoData, scratch: Path) -> Section:
    merge = data.merge
    table = Table(["variant", "accuracy (95% CI)", "mean tokens", "I", "II", "III", "IV"],
                  [[r["variant"], f"{r['accuracy']:.1%} ({r['accuracy_low']:.0%}-{r['accuracy_high']:.0%})",
                    f"{r['mean_tokens']:.0f}", *(str(r[f"level_{level}"]) for level in ("I", "II", "III", "IV"))]
                   for _, r in merge.iterrows()])
    first_id = data.merge_samples["id"].iloc[0]
    example_rows = data.merge_samples[data.merge_samples["id"] == first_id]
    examples = Table(["variant", "level", "output"], [[r["variant"], str(r["level"]), _short(r["output"])]
                                                      for _, r in example_rows.iterrows()],
                     [r["level"] for _, r in example_rows.iterrows()])
    question = example_rows["question"].iloc[0]
    figure = save_figure(plot_merge_levels(merge), scratch / "merge_levels.png", dpi=110)
    return Section("Merge", "B with one module kind copied from R, no training (the paper's Table 1), "
                   f"on {int(merge['samples'].iloc[0])} problems of {data.pair['benchmark']}.",
                   merge_verdict(merge),
                   [("Accuracy, length and output levels", table),
                    (f"Answers to: {_short(question)} (reference {example_rows['reference'].iloc[0]})", examples)],
                   [("Output levels per variant", figure)], _commands(data, "merge"),
                   [("the table", data.index["merge"]["table"]), ("every output with its level", data.index["merge"]["samples"])])


def map_section(data: DemoData) -> Section | None:
    if data.map_table is None:
        return None
    table, probe_name = data.map_cells(), data.map_probe
    top = table[(table["mode"] == "transplant") & (table["layers"] != "all")].sort_values("recovered_share", ascending=False).head(5)
    rows = [[r["kind"], str(r["layers"]), f"{r['recovered_share']:.0%}", f"{r['kl_to_tuned']:.3g}",
             f"{r['kl_ci_low']:.3g}-{r['kl_ci_high']:.3g}", f"{r['delta_rel_change']:.2e}"] for _, r in top.iterrows()]
    probe = data.map_summary.get("probes", {}).get(probe_name, {})
    intro = (f"Where the change lives: each linear kind x layer window of R transplanted into B, or zeroed in B, "
             f"scored by the per-token KL divergence of next-token distributions on R's own answers "
             f"({probe.get('sequences', '?')} answers, {probe.get('tokens', '?')} tokens): one forward pass per cell, no generation.")
    figures = [(caption, data.map_figures[name]) for name, caption in (
        (f"map_transplant_{probe_name}", "Share of KL(R || B) each transplanted cell closes, module kind x layers"),
        (f"map_zero_{probe_name}", "KL(B || variant) after zeroing each cell, module kind x layers"),
    ) if name in data.map_figures]
    columns = ["kind", "layers", "recovered", "KL(R || B') nats/token", "95% CI", "Delta's relative change"]
    return Section("Map", intro, map_verdict(table, data.map_summary, probe_name), [("Top transplant cells", Table(columns, rows))],
                   figures, _commands(data, "map"),
                   _data_links(data, "map", (("every cell", "table"), ("top cells and correlation", "summary"), ("the probe", "probe"))))


def destruction_section(data: DemoData, scratch: Path) -> Section:
    layers = data.index["destruction"]["layers"]
    levels = destruction_levels(data.destruction)
    figure = save_figure(plot_level_map(levels, layers), scratch / "level_map.png", dpi=110)
    first = data.destruction[data.destruction["prompt"] == data.destruction["prompt"].min()]
    rows, row_levels = [], []
    for _, cell in levels.iterrows():
        counts = {level: int(cell[f"level_{level}"]) for level in ("I", "II", "III", "IV")}
        example = first[((first["kind"] == cell["kind"]) | (cell["method"] == "remove")) & (first["method"] == cell["method"])
                        & (first.get("layers", cell["layers"]) == cell["layers"])]
        rows.append([cell["kind"], cell["condition"], typical_level(counts),
                     " ".join(f"{level}:{count}" for level, count in counts.items() if count),
                     _short(example["output"].iloc[0]) if len(example) else ""])
        row_levels.append(typical_level(counts))
    undamaged = first[first["method"] == "none"]
    model = data.index["destruction"].get("model", "R")
    intro = (f"Each linear module kind of {model} zeroed or re-initialised in layers {layers}; answers to "
             f"{data.destruction['prompt'].nunique()} prompts graded I-IV.")
    if len(undamaged):
        intro += f" Undamaged {model} answers the first one: \u201c{_short(undamaged['output'].iloc[0])}\u201d"
    table = Table(["kind", "method", "typical level", "levels", "example output (first prompt)"], rows, row_levels)
    return Section("Destruction", intro, destruction_verdict(data.destruction, layers),
                   [("Level map with example outputs", table)], [("Level map: module kind x destruction method (and layer range)", figure)],
                   _commands(data, "destruction"), [("every output with its level", data.index["destruction"]["table"])])


def freeze_section(data: DemoData, scratch: Path) -> Section | None:
    if data.freeze is None:
        return None
    freeze = data.freeze
    samples = int(data.index["settings"]["eval_limit"])
    steps = data.index["settings"]["freeze_steps"]
    columns = ["preset", "trainable params", "share", "held-out loss", "held-out accuracy", "final train loss", "tokens/s"]
    rows = [[r["preset"], f"{r['trainable params']:,.0f}", f"{r['share']:.1%}", f"{r['held-out loss']:.3f}",
             f"{r['held-out accuracy']:.1%}", f"{r['final train loss']:.3f}", f"{r['tokens/s']:.0f}"] for _, r in freeze.iterrows()]
    figure = save_figure(plot_losses(data.freeze_losses), scratch / "freeze_losses.png", dpi=110)
    return Section("Freeze", f"B fine-tuned for {steps} steps on R's training data with only the named modules "
                   "(and norms) trainable (the paper's Table 2), then scored on the benchmark.",
                   freeze_verdict(freeze, samples), [("Trainable modules and what they reach", Table(columns, rows))],
                   [("Training loss per preset", figure)], _commands(data, "freeze"),
                   [("the table", data.index["freeze"]["table"]),
                    *((f"{preset} loss per step", path) for preset, path in data.index["freeze"]["losses"].items())])


def build_sections(data: DemoData, scratch: Path) -> list[Section]:
    """All sections in reading order; figures the report draws itself go to `scratch`."""
    scratch.mkdir(parents=True, exist_ok=True)
    mapped = map_section(data)
    sections = [pair_section(data), delta_section(data), merge_section(data, scratch), *([mapped] if mapped else []),
                destruction_section(data, scratch)]
    freeze = freeze_section(data, scratch)
    return sections + ([freeze] if freeze else [])

