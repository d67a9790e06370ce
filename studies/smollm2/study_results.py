"""From the finished jobs in the cache to the study's published results: `results/` (a folder that
`sfn report` reads, plus the study's own tables) and README.md, rendered from README.in.md.

Nothing here computes a model output; it only gathers what the jobs wrote, so rerunning it (a rerun
of the study with every job done) rewrites the same files.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sfn.report.layout import LAYOUT

from study_jobs import DONE_FILE, base_dir, job_dir
from study_settings import HERE, StudySettings

TEMPLATE = "README.in.md"
VERDICTS_INTRO_END = "([Markdown](results/report.md))."  # README.in.md: the line before {{verdicts}}
DELTA_FIGURES = ("norms", "histograms", "heatmap", "heads", "histograms_clamped")  # those the delta job drew
LEVELS = ("I", "II", "III", "IV")


def _done(cache: Path, name: str) -> dict[str, Any]:
    return json.loads((job_dir(cache, name) / DONE_FILE).read_text())


def _samples(cache: Path, label: str) -> pd.DataFrame:
    return pd.read_json(job_dir(cache, f"eval:{label}") / "run" / "samples.jsonl", lines=True, dtype=False)


def write_results(cache: Path, out: Path, settings: StudySettings) -> list[Path]:
    """Write OUT/results/ (replacing it whole) and OUT/README.md; the paths written."""
    from sfn.report import write_report

    staging = out / "results.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    index = {"pair": _pair(cache, settings), "settings": {**asdict(settings), "freeze_steps": settings.train_steps},
             "delta": _delta(cache, staging), "merge": _merge(cache, staging, settings),
             "destruction": _destruction(cache, staging, settings), "freeze": _freeze(cache, staging, settings),
             "seconds": _stage_seconds(cache, settings)}
    if settings.map_window:
        index["map"] = _map(cache, staging, settings)
    (staging / LAYOUT.index).write_text(json.dumps(index, indent=2, default=str) + "\n")
    write_report(staging)
    results = out / "results"
    shutil.rmtree(results, ignore_errors=True)
    staging.rename(results)
    readme = out / "README.md"
    if settings.task:
        from task_results import task_tables

        values = task_tables(cache, results, settings)
    else:
        values = tables(cache, results, settings)
    readme.write_text(render_readme((HERE / settings.template).read_text(), values))
    return [results, readme]


def refresh_report(out: Path) -> list[Path]:
    """Re-render OUT/results/report.* and README.md's verdicts from the tables in OUT/results/ with this
    sfn, without the cache: for a change of `sfn report`'s wording, not of the study's numbers."""
    from sfn.report import write_report

    results, readme = out / "results", out / "README.md"
    write_report(results)
    text = readme.read_text()
    start = text.index(VERDICTS_INTRO_END) + len(VERDICTS_INTRO_END)
    end = text.index("\n## ", start)
    readme.write_text(text[:start] + "\n\n" + _verdicts(results) + "\n" + text[end:])
    return [results / "report.html", results / "report.md", readme]


def _pair(cache: Path, settings: StudySettings) -> dict[str, Any]:
    import transformers

    config = transformers.AutoConfig.from_pretrained(base_dir(cache))
    task = f"generated {settings.task} problems" if settings.task else "GSM8K"
    return {"label": f"{settings.base_source().name} (B) and its full {task} fine-tune (R)",
            "base": settings.base_source().name, "tuned": "B + sfn freeze --train all (this study)",
            "model_type": config.model_type, "num_layers": config.num_hidden_layers,
            "parameters": _done(cache, "base")["parameters"], "benchmark": settings.task or "gsm8k", "provenance": {}}


def _delta(cache: Path, staging: Path) -> dict[str, Any]:
    folder = staging / LAYOUT.delta_dir
    folder.mkdir()
    written = job_dir(cache, "delta") / "delta"
    for name in ("delta.csv", "heads.csv", "summary.json", *(f"{figure}.png" for figure in DELTA_FIGURES)):
        if (written / name).is_file():
            shutil.copy2(written / name, folder / name)
    return LAYOUT.delta_entry({name: f"{LAYOUT.delta_dir}/{name}.png" for name in DELTA_FIGURES
                               if (folder / f"{name}.png").is_file()})


def _map(cache: Path, staging: Path, settings: StudySettings) -> dict[str, Any]:
    """The map's table, summary and figures, and the task probe it scored."""
    from study_jobs import map_dir, probe_file

    folder = staging / LAYOUT.map_dir
    shutil.copytree(map_dir(cache), folder)
    shutil.copy2(probe_file(cache, settings), folder / probe_file(cache, settings).name)
    figures = {path.stem: f"{LAYOUT.map_dir}/{path.name}" for path in sorted(folder.glob("*.png"))}
    return LAYOUT.map_entry(figures, f"{LAYOUT.map_dir}/{probe_file(cache, settings).name}")


def _merge(cache: Path, staging: Path, settings: StudySettings) -> dict[str, Any]:
    from sfn.experiments.merge_table import export_columns, merge_row

    rows, samples = [], []
    for label in settings.merge_labels():
        done = _done(cache, f"eval:{label}")
        taken = settings.variants()[label][1] or done.get("taken")
        shown = merge_label(label, done)
        rows.append(merge_row(shown, taken, done["summary"]))
        frame = _samples(cache, label)
        samples.append(frame[export_columns(frame)].assign(variant=shown))
    (staging / LAYOUT.merge_dir).mkdir()
    pd.DataFrame(rows).to_csv(staging / LAYOUT.merge_table, index=False)
    pd.concat(samples, ignore_index=True).to_json(staging / LAYOUT.merge_samples, orient="records", lines=True,
                                                  force_ascii=False)
    return LAYOUT.merge_entry()


def merge_label(label: str, done: dict[str, Any]) -> str:
    """A Merge row's label: the map's best cells are named by the cell they take ('B + R's o@15-17 (map #1)')."""
    return f"B + R's {done['taken']} ({label})" if label.startswith("map #") else label


def _destruction(cache: Path, staging: Path, settings: StudySettings) -> dict[str, Any]:
    (staging / LAYOUT.destruction_dir).mkdir()
    shutil.copy2(job_dir(cache, "destroy") / "destruction.csv", staging / LAYOUT.destruction_table)
    return LAYOUT.destruction_entry(", ".join(settings.destruction_layers), model="B")


def _freeze(cache: Path, staging: Path, settings: StudySettings) -> dict[str, Any]:
    from sfn.experiments.merge_table import export_columns
    from sfn.stethoscopes.freeze.report import compare_table, write_overlay, write_run_report

    folder = staging / LAYOUT.freeze_dir
    runs = []
    for preset in settings.presets:
        metrics = _done(cache, f"train:{preset}")["metrics"]
        label = "R" if preset == "all" else preset
        summary = _done(cache, f"eval:{label}")["summary"]
        # The held-out score is the study's 200-problem evaluation, the same one as the Merge table's.
        metrics = {**metrics, "heldout_score": {"accuracy": summary["accuracy"], "samples": summary["samples"]}}
        loss = pd.read_csv(job_dir(cache, f"train:{preset}") / "run" / "loss.csv")
        write_run_report(folder / preset, loss, metrics)
        runs.append(metrics)
    compare_table(runs).to_csv(staging / LAYOUT.freeze_table, index=False)
    # Every preset's outputs but R's, which merge/samples.jsonl holds.
    frames = {preset: _samples(cache, preset) for preset in settings.presets if preset != "all"}
    outputs = [frame[export_columns(frame)].assign(variant=preset) for preset, frame in frames.items()]
    pd.concat(outputs, ignore_index=True).to_json(folder / "samples.jsonl", orient="records", lines=True, force_ascii=False)
    figure = write_overlay(folder)
    return LAYOUT.freeze_entry(settings.presets, str(figure.relative_to(staging)) if figure else None)


def _stage_seconds(cache: Path, settings: StudySettings) -> dict[str, float]:
    def total(names: list[str]) -> float:
        return round(sum(_done(cache, name)["seconds"] for name in names), 1)

    from study_settings import run_label, train_name

    runs = settings.runs()
    seconds = {"delta": total(["delta"]), "merge": total([f"eval:{label}" for label in settings.merge_labels()]),
               "destruction": total(["destroy"]),
               "freeze": total([f"train:{train_name(*run)}" for run in runs] +
                               [f"eval:{run_label(*run)}" for run in runs if run != ("all", 0)])}
    return {**seconds, "map": total(["map"])} if settings.map_window else seconds


# ---- the README's tables --------------------------------------------------------------------


def _markdown(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(str(value).replace("|", "\\|") for value in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


@dataclass
class Evaluation:
    """One evaluated model, read once for every table and number that quotes it."""

    summary: dict[str, Any]
    samples: pd.DataFrame  # in B's sample order
    paired: dict[str, float]  # `paired_difference` against B


def _evaluations(cache: Path, settings: StudySettings) -> dict[str, Evaluation]:
    from sfn.eval.stats import paired_difference, problem_pass_rates

    baseline = _samples(cache, "B")
    baseline_rates = problem_pass_rates(baseline)
    evaluations = {}
    for label in settings.variants():
        samples = _samples(cache, label)
        # Per-problem pass rates: with one sample each, the 0/1 verdicts; with several, their share.
        paired = paired_difference(problem_pass_rates(samples).loc[baseline_rates.index].tolist(), baseline_rates.tolist())
        samples = samples.set_index("id").loc[baseline["id"].drop_duplicates()].reset_index()
        evaluations[label] = Evaluation(_done(cache, f"eval:{label}")["summary"], samples, paired)
    return evaluations


def _evaluation_row(label: str, evaluation: Evaluation) -> dict[str, str]:
    summary, paired = evaluation.summary, evaluation.paired
    low, high = summary["accuracy_ci95"]
    levels = summary["levels"]
    return {
        "accuracy": f"{summary['accuracy']:.1%} ({int(round(summary['accuracy'] * summary['samples']))}/{summary['samples']})",
        "95% CI": f"{low:.1%}-{high:.1%}",
        "vs B, paired (95% CI)": "-" if label == "B" else
        f"{100 * paired['difference']:+.1f} pts ({100 * paired['low']:+.1f}, {100 * paired['high']:+.1f}); p={paired['p_value']:.2g}",
        "mean tokens": f"{summary['mean_output_tokens']:.0f}",
        "hit the limit": f"{summary['truncated_share']:.0%}",
        "boxed answer": f"{boxed_share(evaluation.samples):.0%}",
        **{level: str(levels.get(level, 0)) for level in LEVELS},
    }


def boxed_share(samples: pd.DataFrame) -> float:
    """Share of outputs that box their answer, the format R was trained to end with ('Final Answer: \\boxed{..}');
    B was asked to box it too, by the instruction, and mostly does not."""
    return float(samples["output"].str.contains("\\boxed{", regex=False).mean())


def tables(cache: Path, results: Path, settings: StudySettings) -> dict[str, str]:
    """Placeholder name -> Markdown, for README.in.md."""
    from sfn.stethoscopes.delta import summarize
    from sfn.report.figures import typical_level
    from sfn.report.verdicts import destruction_levels

    evaluations = _evaluations(cache, settings)
    merge = pd.DataFrame([{"model": label, **_evaluation_row(label, evaluations[label])} for label, _, _ in settings.merge_variants])

    compare = pd.read_csv(results / LAYOUT.freeze_table)
    freeze_rows = []
    for preset, (_, row) in zip(settings.presets, compare.iterrows()):
        metrics = _done(cache, f"train:{preset}")["metrics"]
        label = "R" if preset == "all" else preset
        evaluation = _evaluation_row(label, evaluations[label])
        freeze_rows.append({
            "trainable": preset, "parameters": f"{row['trainable params'] / 1e6:.1f} M ({row['share']:.1%})",
            "held-out loss (before → after)": f"{metrics['heldout_loss_before']:.3f} → {metrics['heldout_loss']:.3f}",
            "GSM8K accuracy (95% CI)": f"{evaluation['accuracy']} ({evaluation['95% CI']})",
            "vs B, paired": evaluation["vs B, paired (95% CI)"], "mean tokens": evaluation["mean tokens"],
            "boxed answer": evaluation["boxed answer"],
            "levels I/II/III/IV": "/".join(evaluation[level] for level in LEVELS),
            "train time": f"{_done(cache, f'train:{preset}')['seconds'] / 60:.1f} min",
            "tokens/s": f"{row['tokens/s']:.0f}", "speed vs all": f"{row.get('speed vs all', float('nan')):.2f}x",
            "peak memory": f"{row['peak memory'] / 2**20:.0f} MiB",
        })

    destruction = pd.read_csv(results / LAYOUT.destruction_table, keep_default_na=False)
    levels = destruction_levels(destruction)
    grid: dict[str, dict[str, str]] = {}
    for _, cell in levels.iterrows():
        counts = {level: int(cell[f"level_{level}"]) for level in LEVELS}
        detail = " ".join(f"{level}:{count}" for level, count in counts.items() if count)
        grid.setdefault(cell["kind"], {})[cell["condition"]] = f"**{typical_level(counts)}** ({detail})"
    conditions = list(dict.fromkeys(levels["condition"]))
    destruction_map = pd.DataFrame([{"module": kind, **{c: cells.get(c, "") for c in conditions}} for kind, cells in grid.items()])
    undamaged = destruction[destruction["method"] == "none"]["level"].value_counts()

    ranking = summarize(pd.read_csv(results / LAYOUT.delta_table))
    delta = pd.DataFrame({"rank": ranking["rank"], "kind": ranking["kind"],
                          "mean relative change": ranking["mean_rel_norm"].map("{:.2e}".format),
                          "first in layers": [f"{a}/{b}" if b else "-" for a, b in zip(ranking["first_in_layers"], ranking["layers"])],
                          "bimodal layers": [f"{a}/{b}" if b else "-" for a, b in zip(ranking["bimodal_layers"], ranking["layers"])]})
    return {
        **_numbers(cache, settings, evaluations, ranking),
        "machine": _machine(),
        "timing": _timing(cache),
        "settings": _settings_table(settings),
        "delta_table": _markdown(delta),
        "merge_table": _markdown(merge),
        "freeze_table": _markdown(pd.DataFrame(freeze_rows)),
        "destruction_table": _markdown(destruction_map),
        "destruction_undamaged": ", ".join(f"{level}: {count}" for level, count in sorted(undamaged.items())),
        "prompts": "\n".join(f"{i + 1}. {prompt}" for i, prompt in enumerate(settings.conversation_prompts)),
        "verdicts": _verdicts(results),
    }


def number_key(label: str) -> str:
    """A placeholder-friendly name for an evaluated model: 'B + R's q,k,v' -> 'merge_qkv', 'emb+head+o' -> 'emb_head_o'."""
    return label.replace("B + R's ", "merge_").replace(",", "").replace("+", "_")


def _numbers(cache: Path, settings: StudySettings, evaluations: dict[str, Evaluation], ranking: pd.DataFrame) -> dict[str, str]:
    """Single numbers the prose quotes, so that a rerun can never leave the text behind its tables:
    acc_<model>, ci_<model>, diff_<model> (paired, vs B), tokens_<model>, levels_<model>, and Delta's ranks."""
    values = {}
    for label, evaluation in evaluations.items():
        summary, paired = evaluation.summary, evaluation.paired
        key = number_key(label)
        values[f"acc_{key}"] = f"{summary['accuracy']:.1%}"
        values[f"ci_{key}"] = f"{summary['accuracy_ci95'][0]:.1%}-{summary['accuracy_ci95'][1]:.1%}"
        values[f"diff_{key}"] = (f"{100 * paired['difference']:+.1f} points (95% CI {100 * paired['low']:+.1f} to "
                                 f"{100 * paired['high']:+.1f}, p={paired['p_value']:.2g})")
        values[f"tokens_{key}"] = f"{summary['mean_output_tokens']:.0f}"
        values[f"boxed_{key}"] = f"{boxed_share(evaluation.samples):.0%}"
        values[f"truncated_{key}"] = f"{summary['truncated_share']:.0%}"
        values[f"levels_{key}"] = ", ".join(f"{level} {summary['levels'].get(level, 0)}" for level in LEVELS)
    layered = ranking[ranking["layers"] > 0]
    order = layered.sort_values("mean_rel_norm", ascending=False)["kind"].tolist()
    o = layered[layered["kind"] == "o"].iloc[0]
    leaders = layered[layered["first_in_layers"] > 0].sort_values("first_in_layers", ascending=False)
    linear = layered[~layered["kind"].str.contains("norm")]["mean_rel_norm"]
    values.update(delta_order=", ".join(order), o_rank=str(order.index("o") + 1), o_first_layers=f"{o['first_in_layers']}/{o['layers']}",
                  o_bimodal_layers=f"{o['bimodal_layers']}/{o['layers']}",
                  delta_leaders=", ".join(f"{r['kind']} in {r['first_in_layers']}" for _, r in leaders.iterrows()),
                  delta_linear_range=f"{linear.min():.2e} to {linear.max():.2e}")
    # Held-out loss of each Freeze preset, and the share of `all`'s reduction over emb+head each reaches.
    losses = {preset: _done(cache, f"train:{preset}")["metrics"] for preset in settings.presets}
    for preset, metrics in losses.items():
        values[f"loss_{number_key(preset)}"] = f"{metrics['heldout_loss_before']:.3f} → {metrics['heldout_loss']:.3f}"
    if {"all", "emb+head"} <= set(losses):
        floor, full = losses["emb+head"]["heldout_loss"], losses["all"]["heldout_loss"]
        for preset in set(losses) - {"all", "emb+head"}:
            share = (floor - losses[preset]["heldout_loss"]) / (floor - full) if floor > full else float("nan")
            values[f"loss_share_{number_key(preset)}"] = f"{share:.0%}"
    return values


def _verdicts(results: Path) -> str:
    """The findings `sfn report` computed (the same text as results/report.md)."""
    lines, heading = [], None
    for line in (results / "report.md").read_text().splitlines():
        if line.startswith("## "):
            heading = line.replace("## ", "**", 1) + ".**"
        elif line.startswith("> ") and heading:
            lines += ["", heading] if heading not in lines else []
            lines.append(line)
    return "\n".join(lines).strip()


def _machine() -> str:
    import torch
    import transformers

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").is_file() else platform.processor()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    from sfn import __version__

    return (f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB, no GPU; Python {platform.python_version()}, "
            f"torch {torch.__version__}, transformers {transformers.__version__}, sfn {__version__}")


def _timing(cache: Path) -> str:
    rows = []
    for folder in sorted((cache / "jobs").iterdir()):
        if (folder / DONE_FILE).is_file():
            done = json.loads((folder / DONE_FILE).read_text())
            rows.append({"job": done["job"], "minutes": f"{done['seconds'] / 60:.1f}"})
    runs = [json.loads(line) for line in (cache / "runs.jsonl").read_text().splitlines() if line.strip()]
    wall = sum(run["seconds"] for run in runs)
    return (_markdown(pd.DataFrame(rows)) + f"\n\nWall-clock time of the study: **{wall / 60:.0f} min** "
            f"over {len(runs)} invocation(s) of the run script, two jobs at a time (one core each).")


def _settings_table(settings: StudySettings) -> str:
    rows = [
        ("training data", f"first {settings.train_examples} problems of GSM8K train ({settings.heldout} held out for the loss)"),
        ("training", f"{settings.train_steps} steps x batch {settings.train_batch_size}, seq len {settings.seq_len}, "
                     f"AdamW lr {settings.lr:g} cosine, {settings.warmup_ratio:.0%} warm-up, seed {settings.seed}; loss on the response only"),
        ("prompt", f"{settings.prompt_format} template, instruction to box the answer; same for training and evaluation"),
        ("evaluation", f"first {settings.eval_limit} problems of GSM8K test, greedy, at most {settings.max_new_tokens} new tokens, "
                       f"batch {settings.eval_batch_size}"),
        ("destruction", f"{len(settings.conversation_prompts)} conversation prompts, {settings.destruction_max_new_tokens} new tokens, "
                        f"layers {' and '.join(settings.destruction_layers)}, methods {', '.join(settings.destruction_methods)}"),
    ]
    return _markdown(pd.DataFrame(rows, columns=["what", "choice"]))


def render_readme(template: str, values: dict[str, str]) -> str:
    """Replace every {{name}} of the template; a name without a value is an error, not a silent gap."""
    import re

    missing = sorted(set(re.findall(r"\{\{(\w+)\}\}", template)) - set(values))
    if missing:
        raise KeyError(f"{TEMPLATE} names {missing}, which the study does not produce")
    return re.sub(r"\{\{(\w+)\}\}", lambda match: values[match.group(1)], template)
