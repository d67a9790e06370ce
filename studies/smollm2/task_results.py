"""The second study's README tables and numbers (issue 19), from the finished jobs and results/: the
pilot, Delta's report card, the maps, the Merge table with paired intervals and parameter counts, the
alpha curve, the Freeze presets over seeds, and the destruction check. Like study_results.py it only
gathers what the jobs wrote; the prose that quotes a number names it as a {{placeholder}}.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sfn.report.layout import LAYOUT

from study_jobs import base_dir
from study_results import LEVELS, _done, _evaluations, _machine, _markdown, _timing, _verdicts, merge_label, number_key
from study_settings import HERE, StudySettings, run_label

PILOT = HERE / "pilot" / "pilot.json"


def task_tables(cache: Path, results: Path, settings: StudySettings) -> dict[str, str]:
    """Placeholder name -> Markdown, for two_step/README.in.md."""
    evaluations = _evaluations(cache, settings)
    values: dict[str, str] = {"machine": _machine(), "timing": _timing(cache), "settings": _settings_table(settings),
                              "pilot_table": pilot_table(), "verdicts": _verdicts(results),
                              "eval_problems": str(evaluations["B"].summary["samples"])}
    values.update(_delta_card(results))
    values.update(_merge(cache, settings, evaluations))
    values.update(_maps(results, settings))
    values.update(_freeze(cache, settings, evaluations))
    values.update(_destruction_check(results, settings))
    return values


def pilot_table(path: Path = PILOT) -> str:
    """Every task the pilot measured: B's accuracy on 100 held-out problems, and R's where it was trained."""
    record = json.loads(path.read_text())
    rows = []
    for task, row in record["tasks"].items():
        tuned = "; ".join(f"{steps}: {r['accuracy']:.0%} ({r['ci95'][0]:.0%}-{r['ci95'][1]:.0%})"
                          for steps, r in row.get("tuned", {}).items())
        rows.append({"task (prompt)": task if row["shots"] else f"{task} (chat)", "B": f"{row['accuracy']:.0%}",
                     "95% CI": f"{row['ci95'][0]:.0%}-{row['ci95'][1]:.0%}", "mean tokens": f"{row['mean_output_tokens']:.0f}",
                     "B in 10-50%": "yes" if row["qualifies"] else "no", "R after N steps (95% CI)": tuned or "-"})
    return _markdown(pd.DataFrame(rows))


def _settings_table(settings: StudySettings) -> str:
    training = settings.training()
    repeats = ", ".join(f"{preset} x{count}" for preset, count in settings.repeats)
    rows = [
        ("task", f"{settings.task} (tasks.py): {settings.eval_limit} held-out problems of seed 0, the next "
                 f"{settings.train_examples} for training ({settings.heldout} of them for the held-out loss); no question in both"),
        ("prompt", f"plain text: {settings.shots} worked solutions of seed 1 (none held out or trained on), then the question; "
                   f"generation stops at {json.dumps(settings.evaluation('-')['stop'][0])}"),
        ("training", f"sfn.freeze, {settings.train_steps} steps x batch {settings.train_batch_size} (two epochs), AdamW lr "
                     f"{settings.lr:g} cosine, {settings.warmup_ratio:.0%} warm-up; loss on the worked solution "
                     f"({json.dumps(training['response_template'])}); seeds 0, and 1-2 for {repeats}"),
        ("evaluation", f"the {settings.eval_limit} held-out problems, greedy, at most {settings.max_new_tokens} new tokens, "
                       "levels graded with B as the fluency reference"),
        ("maps", f"{settings.map_kinds} kinds x {settings.map_window}-layer windows, transplanted into B and zeroed in B; "
                 f"probes: {settings.map_probe_problems} task problems (seed 2) with their worked solutions, and the 16 "
                 f"built-in conversation prompts with B's answers; alpha curve of R's {settings.alpha_kind}"),
        ("destruction check", f"zeroing in B: every linear kind in layers {', '.join(settings.destruction_layers)}, and the "
                              f"map's {settings.map_top} most and least damaging cells (conversation probe); "
                              f"{len(settings.conversation_prompts)} conversation prompts, {settings.destruction_max_new_tokens} new tokens"),
    ]
    return _markdown(pd.DataFrame(rows, columns=["what", "choice"]))


# ---- Delta ---------------------------------------------------------------------------------------


def _delta_card(results: Path) -> dict[str, str]:
    from sfn.stethoscopes.delta import summarize

    table = pd.read_csv(results / LAYOUT.delta_table)
    ranking = summarize(table)
    summary = json.loads((results / LAYOUT.delta_summary).read_text())
    card = pd.DataFrame({
        "rank": ranking["rank"], "kind": ranking["kind"], "mean relative change": ranking["mean_rel_norm"].map("{:.2e}".format),
        "first in layers": [f"{a}/{b}" if b else "-" for a, b in zip(ranking["first_in_layers"], ranking["layers"])],
        "moved (median)": ranking["median_moved_share"].map("{:.0%}".format),
        "top direction's energy": ranking["median_sv1_share"].map(_share),
        "energy in 8 directions": ranking["median_energy_at_8"].map(_share),
        "stable rank": ranking["median_stable_rank"].map(lambda v: "-" if pd.isna(v) else f"{v:.1f}"),
        "bimodal (sfn)": [f"{a}/{b}" if b else "-" for a, b in zip(ranking["bimodal_layers"], ranking["layers"])],
        "bimodal (paper's clamp)": [f"{a}/{b}" if b else "-" for a, b in zip(ranking["clamp_bimodal_layers"], ranking["layers"])],
        "at the clamp's edges": ranking["median_edge_share"].map("{:.1%}".format),
    })
    layered = ranking[ranking["layers"] > 0]
    order = layered["kind"].tolist()
    o_heads = [len(row["heads"]) for row in summary.get("o_heads", [])]
    heads = pd.read_csv(results / LAYOUT.delta_dir / "heads.csv")
    o_share = heads[heads["kind"] == "o"].groupby("layer")["share"].max()
    return {
        "delta_card": _markdown(card), "delta_order": ", ".join(order), "o_rank": str(order.index("o") + 1),
        "delta_first": order[0], "delta_finding": summary.get("finding", ""),
        "clamp_bimodal_kinds": str(int((layered["clamp_bimodal_layers"] > layered["layers"] / 2).sum())),
        "sfn_bimodal_kinds": str(int((layered["bimodal_layers"] > layered["layers"] / 2).sum())),
        "layered_kinds": str(len(layered)),
        "edge_share_range": f"{layered['median_edge_share'].min():.1%}-{layered['median_edge_share'].max():.1%}",
        "o_heads_median": f"{np.median(o_heads):.0f}" if o_heads else "-",
        "o_top_head_share": f"{o_share.median():.0%}" if len(o_share) else "-",
        "num_heads": str(int(heads[heads["kind"] == "o"]["head"].nunique())),
    }


def _share(value: float) -> str:
    return "-" if pd.isna(value) else f"{value:.0%}"


# ---- Merge and alpha -----------------------------------------------------------------------------


def parameters(cache: Path, selector: str | None) -> int:
    """How many of B's parameters `selector` names (0 for none)."""
    if not selector:
        return 0
    from sfn.io.sources import opened
    from sfn.registry import module_map, select

    with opened(str(base_dir(cache))) as checkpoint:
        return sum(part.numel for part in select(module_map(checkpoint, warn=False), selector))


def _merge(cache: Path, settings: StudySettings, evaluations: dict[str, Any]) -> dict[str, str]:
    rows, values = [], {}
    r_gain = evaluations["R"].paired["difference"]
    for label in settings.merge_labels():
        evaluation, done = evaluations[label], _done(cache, f"eval:{label}")
        start, taken, alpha = settings.variants()[label]
        taken = taken or done.get("taken")
        count = parameters(cache, taken) if label != "R" else done.get("parameters") or _all_parameters(cache)
        summary, paired = evaluation.summary, evaluation.paired
        share = paired["difference"] / r_gain if label not in ("B", "R") and r_gain > 0 else float("nan")
        rows.append({
            "model": merge_label(label, done), "parameters from R": f"{count / 1e6:.2f} M" if count else "-",
            **_accuracy_columns(label, summary, paired),
            "share of R's gain": "-" if np.isnan(share) else f"{share:.0%}",
            "gain per M parameters": "-" if not count or label == "B" else f"{100 * paired['difference'] / (count / 1e6):+.2f} pts",
            "mean tokens": f"{summary['mean_output_tokens']:.0f}",
            "levels I/II/III/IV": "/".join(str(summary["levels"].get(level, 0)) for level in LEVELS),
        })
        key = placeholder_key(label)
        values.update(_numbers(key, summary, paired))
        values[f"share_{key}"] = "-" if np.isnan(share) else f"{share:.0%}"
        values[f"params_{key}"] = f"{count / 1e6:.2f} M"
        values[f"gain_per_m_{key}"] = rows[-1]["gain per M parameters"]
        if label.startswith("map #"):
            values[f"cell_{key}"] = taken
    values["merge_table"] = _markdown(pd.DataFrame(rows))
    # The map's best cells, however many the profile evaluates (`map_top`).
    maps = [label for label in settings.merge_labels() if label.startswith("map #")]
    values["map_cells"] = ", ".join(values[f"cell_{placeholder_key(label)}"] for label in maps)
    values["map_cells_accuracy"] = ", ".join(values[f"acc_{placeholder_key(label)}"] for label in maps)
    return values


def placeholder_key(label: str) -> str:
    """A model's name in placeholders: 'B + R's q,k,v' -> 'merge_qkv', 'B + 0.5 x R's o' -> 'B_0_5_x_R_s_o', 'map #1' -> 'map_1'."""
    return re.sub(r"[\W_]+", "_", number_key(label)).strip("_")


def _all_parameters(cache: Path) -> int:
    return int(_done(cache, "base")["parameters"])


def _accuracy_columns(label: str, summary: dict[str, Any], paired: dict[str, float]) -> dict[str, str]:
    low, high = summary["accuracy_ci95"]
    return {
        "accuracy": f"{summary['accuracy']:.1%} ({int(round(summary['accuracy'] * summary['samples']))}/{summary['samples']})",
        "95% CI": f"{low:.1%}-{high:.1%}",
        "vs B, paired (95% CI)": "-" if label == "B" else
        f"{100 * paired['difference']:+.1f} pts ({100 * paired['low']:+.1f}, {100 * paired['high']:+.1f}); p={paired['p_value']:.2g}",
    }


def _numbers(key: str, summary: dict[str, Any], paired: dict[str, float]) -> dict[str, str]:
    return {f"acc_{key}": f"{summary['accuracy']:.1%}",
            f"ci_{key}": f"{summary['accuracy_ci95'][0]:.1%}-{summary['accuracy_ci95'][1]:.1%}",
            f"diff_{key}": f"{100 * paired['difference']:+.1f} points (95% CI {100 * paired['low']:+.1f} to "
                           f"{100 * paired['high']:+.1f}, p={paired['p_value']:.2g})"}


# ---- Maps ----------------------------------------------------------------------------------------


def _maps(results: Path, settings: StudySettings) -> dict[str, str]:
    table = pd.read_csv(results / LAYOUT.map_table, keep_default_na=False, na_values=[""])
    summary = json.loads((results / LAYOUT.map_summary).read_text())
    task, windows = settings.task, table[(table["layers"] != "all") & (table["mode"] != "alpha")]
    transplant = windows[(windows["mode"] == "transplant") & (windows["probe"] == task)]
    top = transplant.sort_values("recovered_share", ascending=False, kind="stable").head(8)
    top_table = pd.DataFrame({
        "cell": [f"{r.kind}@{r.layers}" for r in top.itertuples()],
        "share of KL(R || B) closed": top["recovered_share"].map("{:.0%}".format),
        "KL(R || B') 95% CI": [f"{r.kl_ci_low:.3g}-{r.kl_ci_high:.3g}" for r in top.itertuples()],
        "Delta's relative change": top["delta_rel_change"].map("{:.2e}".format)})
    # Equal parameter count: q and o are both hidden x hidden, so their cells are a like-for-like pair.
    by_window = transplant.pivot_table(index="layers", columns="kind", values="recovered_share", sort=False)
    o_beats_q = int((by_window["o"] > by_window["q"]).sum()) if {"o", "q"} <= set(by_window) else 0
    whole = table[(table["layers"] == "all") & (table["mode"] == "transplant") & (table["probe"] == task)]
    # Parameters per kind from Delta's table (every layer's element count), for a like-for-like reading.
    delta_table = pd.read_csv(results / LAYOUT.delta_table)
    millions = whole["kind"].map(delta_table.groupby("kind")["numel"].sum()) / 1e6
    per_million = whole["recovered_share"] / millions.to_numpy()
    whole_table = pd.DataFrame({"kind": whole["kind"], "parameters": millions.map("{:.2f} M".format),
                                "share closed, every layer": whole["recovered_share"].map("{:.0%}".format),
                                "share per M parameters": per_million.map("{:.1%}".format),
                                "Delta's relative change": whole["delta_rel_change"].map("{:.2e}".format)})
    whole_values = {f"{name}_{kind}": value for kind, share, count, rate in
                    zip(whole["kind"], whole["recovered_share"], millions, per_million)
                    for name, value in (("whole", f"{share:.0%}"), ("whole_params", f"{count:.2f} M"),
                                        ("whole_per_m", f"{rate:.1%}"))}
    zero = windows[windows["mode"] == "zero"].pivot_table(index=["kind", "layers"], columns="probe", values="kl_to_base", sort=False)
    zero["ratio"] = zero[task] / zero["conversation"]
    by_kind = zero.groupby(level="kind", sort=False)[[task, "conversation"]].median()
    zero_table = pd.DataFrame({"kind": by_kind.index, f"median KL(B || zeroed), {task}": by_kind[task].map("{:.3g}".format),
                               "median KL, conversation": by_kind["conversation"].map("{:.3g}".format)})
    zero_values = {f"zero_{probe}_{kind}": f"{by_kind.loc[kind, column]:.3g}" for kind in by_kind.index
                   for probe, column in (("task", task), ("conversation", "conversation"))}
    correlation = summary["changed_vs_matters"]
    alpha = table[(table["mode"] == "alpha")].pivot_table(index="alpha", columns="probe",
                                                          values=["recovered_share", "kl_to_base"], sort=True)
    alpha_table = pd.DataFrame({
        "alpha": [f"{a:g}" for a in alpha.index],
        f"share of KL(R || B) closed, {task}": alpha[("recovered_share", task)].map("{:.0%}".format),
        "KL(B || variant), conversation": alpha[("kl_to_base", "conversation")].map("{:.3g}".format)})
    return {
        **whole_values, **zero_values, "map_top_table": _markdown(top_table), "map_whole_table": _markdown(whole_table),
        "map_zero_table": _markdown(zero_table), "alpha_map_table": _markdown(alpha_table),
        "o_beats_q": f"{o_beats_q}/{len(by_window)}",
        "rho_transplant": _rho(correlation.get(f"transplant/{task}")),
        "rho_zero_task": _rho(correlation.get(f"zero/{task}")),
        "rho_zero_conversation": _rho(correlation.get("zero/conversation")),
        "gap_task": f"{summary['probes'][task]['kl_tuned_to_base']:.3g}",
        "gap_conversation": f"{summary['probes']['conversation']['kl_tuned_to_base']:.3g}",
        "probe_tokens": str(summary["probes"][task]["tokens"]),
        "map_figures": "\n".join(f"![{name}](results/{path})" for name, path in sorted(
            json.loads((results / LAYOUT.index).read_text())["map"]["figures"].items())),
    }


def _rho(value: float | None) -> str:
    return "undefined" if value is None else f"{value:+.2f}"


# ---- Freeze --------------------------------------------------------------------------------------


def _freeze(cache: Path, settings: StudySettings, evaluations: dict[str, Any]) -> dict[str, str]:
    counts, rows, values = dict(settings.repeats), [], {}
    for preset in settings.presets:
        labels = [run_label(preset, seed) for seed in range(counts.get(preset, 1))]
        accuracies = [evaluations[label].summary["accuracy"] for label in labels]
        metrics = [_done(cache, f"train:{preset}" + (f"#{seed}" if seed else ""))["metrics"] for seed in range(len(labels))]
        first = evaluations[labels[0]]
        rows.append({
            "trainable": preset, "parameters": f"{metrics[0]['trainable_parameters'] / 1e6:.1f} M ({metrics[0]['trainable_share']:.1%})",
            "seeds": str(len(labels)), "accuracy per seed": ", ".join(f"{a:.1%}" for a in accuracies),
            "mean (min-max)": f"{np.mean(accuracies):.1%}" + (f" ({min(accuracies):.1%}-{max(accuracies):.1%})" if len(labels) > 1 else ""),
            "seed 0, 95% CI": f"{first.summary['accuracy_ci95'][0]:.1%}-{first.summary['accuracy_ci95'][1]:.1%}",
            "seed 0 vs B, paired": _accuracy_columns(labels[0], first.summary, first.paired)["vs B, paired (95% CI)"],
            "held-out loss (mean)": f"{np.mean([m['heldout_loss_before'] for m in metrics]):.3f} → "
                                    f"{np.mean([m['heldout_loss'] for m in metrics]):.3f}",
            "train time": f"{np.mean([_done(cache, f'train:{preset}' + (f'#{s}' if s else ''))['seconds'] for s in range(len(labels))]) / 60:.1f} min",
        })
        key = placeholder_key(preset)
        values[f"freeze_mean_{key}"] = f"{np.mean(accuracies):.1%}"
        values[f"freeze_range_{key}"] = f"{min(accuracies):.1%}-{max(accuracies):.1%}"
        values[f"freeze_seeds_{key}"] = ", ".join(f"{a:.1%}" for a in accuracies)
        values.update(_numbers(f"freeze_{key}", first.summary, first.paired))
    values["freeze_table"] = _markdown(pd.DataFrame(rows))
    return values


# ---- Destruction check ---------------------------------------------------------------------------


def _destruction_check(results: Path, settings: StudySettings) -> dict[str, str]:
    from sfn.report.figures import typical_level

    sweep = pd.read_csv(results / LAYOUT.destruction_table, keep_default_na=False)
    table = pd.read_csv(results / LAYOUT.map_table, keep_default_na=False, na_values=[""])
    zero = table[(table["mode"] == "zero") & (table["probe"] == "conversation")].set_index(["kind", "layers"])
    rows = []
    for (method, kind, layers), outputs in sweep.groupby(["method", "kind", "layers"], sort=False):
        counts = outputs["level"].value_counts()
        map_kl = zero["kl_to_base"].get((kind, str(layers)), float("nan")) if method == "zero" else float("nan")
        rows.append({"zeroed in B": "nothing (B)" if method == "none" else f"{kind}@{layers}",
                     "map: KL(B || zeroed), conversation": "-" if np.isnan(map_kl) else f"{map_kl:.3g}",
                     "typical level": typical_level({level: int(counts.get(level, 0)) for level in LEVELS}),
                     "levels": " ".join(f"{level}:{int(counts[level])}" for level in LEVELS if level in counts),
                     "first answer": outputs["output"].iloc[0][:80].replace("\n", " ")})
    frame = pd.DataFrame(rows)
    ranked = frame[frame["map: KL(B || zeroed), conversation"] != "-"]
    ranked = ranked.assign(kl=ranked["map: KL(B || zeroed), conversation"].astype(float)).sort_values("kl", ascending=False)
    return {"destruction_check": _markdown(frame.drop(columns="first answer")),
            "destruction_outputs": _markdown(frame[["zeroed in B", "first answer"]]),
            "destruction_ranked": ", ".join(f"{r['zeroed in B']} ({r['typical level']})" for _, r in ranked.iterrows())}
