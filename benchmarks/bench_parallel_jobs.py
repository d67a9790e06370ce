"""Two jobs with one thread each against one job with two threads: GSM8K generation on
SmolLM2-135M-Instruct, the choice behind the SmolLM2 study's two one-core workers.

Each side runs in fresh child processes (the same prompts, greedy, batch 32); the two one-thread
children run at the same time and each does the full work, so their combined rate is
(tokens of both) / (the slower one's seconds).

    python benchmarks/bench_parallel_jobs.py [--prompts 32] [--max-new-tokens 128]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


def child(threads: int, prompts: int, max_new_tokens: int, batch_size: int) -> None:
    """Load SmolLM2, generate, print {"seconds", "tokens"} of the generation alone."""
    import torch

    torch.set_num_threads(threads)
    from bench_generation import measure, questions

    from sfn.eval.backends.hf import HFBackend
    from sfn.eval.prompts import build_prompt
    from sfn.io.load_model import load_model
    from sfn.io.smollm2 import smollm2_gguf

    model, tokenizer = load_model(smollm2_gguf())
    texts = [build_prompt(question, tokenizer) for question in questions(prompts)]
    seconds, tokens = measure(HFBackend(model, tokenizer, batch_size=batch_size), texts, max_new_tokens)
    print(json.dumps({"seconds": seconds, "tokens": tokens}))


def run_children(count: int, threads: int, args: argparse.Namespace) -> tuple[float, int]:
    """(seconds of the slowest, tokens of all) of `count` children started together."""
    command = [sys.executable, __file__, "--child", str(threads), "--prompts", str(args.prompts),
               "--max-new-tokens", str(args.max_new_tokens), "--batch-size", str(args.batch_size)]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for _ in range(count)]
    results = []
    for process in processes:
        output, _ = process.communicate()
        if process.returncode:
            sys.exit(f"a child failed (exit {process.returncode})")
        results.append(json.loads(output.strip().splitlines()[-1]))
    return max(r["seconds"] for r in results), sum(r["tokens"] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.prompts, args.max_new_tokens, args.batch_size)
        return
    rows = [("1 job x 2 threads", *run_children(1, 2, args)), ("2 jobs x 1 thread", *run_children(2, 1, args))]
    print(f"prompts per job: {args.prompts}, batch {args.batch_size}, max new tokens {args.max_new_tokens}, greedy")
    print(f"{'layout':<18} {'seconds':>8} {'tokens':>7} {'tokens/s':>9}")
    for layout, seconds, tokens in rows:
        print(f"{layout:<18} {seconds:>8.1f} {tokens:>7} {tokens / seconds:>9.1f}")
    print(f"two one-thread jobs do {(rows[1][2] / rows[1][1]) / (rows[0][2] / rows[0][1]):.2f}x the work per second")


if __name__ == "__main__":
    main()
