"""vLLM (CPU build) vs the hf backend: generation tokens/s on the same greedy workload, and switching a
variant inside a running engine vs starting a new engine.

Runs in the venv of scripts/install_vllm_cpu.sh. Both backends get the same prompts, token ids and
limits; each is warmed up once and then timed on the whole batch in this one process. The "new
engine" cost is this run's own engine start (same model, same settings), the alternative to an
in-engine update for every variant of a Merge table.

    python benchmarks/bench_vllm.py [--model DIR_OR_GGUF] [--donor DIR] [--prompts 16] [--max-new-tokens 64]
"""

from __future__ import annotations

import argparse
import json
import time

ORGANISM_QUESTIONS = "organism-math.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model directory or .gguf (default: the organism's base B)")
    parser.add_argument("--donor", help="donor of the o modules for the variant switch (default: the organism's tuned R)")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of the hf backend (vLLM's CPU worker binds one per core it is given; "
                             "on 2 cores it keeps one for itself and uses 1)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)

    from sfn.eval.backends.hf import HFBackend
    from sfn.eval.backends.vllm import VLLMBackend
    from sfn.io.load_model import load_model
    from sfn.organism.benchmark import SHIPPED_DIR
    from sfn.stethoscopes.surgery.edits import merge_edits

    model_source = args.model or str(SHIPPED_DIR / "base")
    donor = args.donor or str(SHIPPED_DIR / "tuned")
    rows = [json.loads(line) for line in (SHIPPED_DIR / ORGANISM_QUESTIONS).read_text().splitlines()[: args.prompts]]
    prompts = [f"Question: {row['question']}\nAnswer:" for row in rows]
    limits = [args.max_new_tokens] * len(prompts)

    started = time.perf_counter()
    engine = VLLMBackend(model_source, engine_args={"dtype": args.dtype})
    engine_start = time.perf_counter() - started
    model, tokenizer = load_model(model_source, dtype=getattr(torch, args.dtype))
    hf = HFBackend(model, tokenizer, batch_size=len(prompts))

    rates, outputs = {}, {}
    for name, backend in (("hf", hf), ("vllm", engine)):
        backend.generate(prompts[:2], [4, 4])  # warm-up
        started = time.perf_counter()
        outputs[name] = backend.generate(prompts, limits)
        seconds = time.perf_counter() - started
        rates[name] = (sum(c.num_tokens for c in outputs[name]) / seconds, seconds)
    same = sum(a == b for a, b in zip(outputs["hf"], outputs["vllm"]))

    started = time.perf_counter()
    with engine.variant(merge_edits(model_source, donor, "o")) as names:
        switched = time.perf_counter() - started
        engine.generate(prompts[:1], [1])
        started = time.perf_counter()
    switched_back = time.perf_counter() - started

    print(f"model {model_source}, {len(prompts)} prompts x {args.max_new_tokens} new tokens, greedy, {args.dtype}, "
          f"hf torch threads {torch.get_num_threads()}; the same completion from both backends for {same} of {len(prompts)}")
    print("| what | seconds | tokens/s | vs hf |\n| --- | --- | --- | --- |")
    for name, (rate, seconds) in rates.items():
        print(f"| generate, {name} backend | {seconds:.2f} | {rate:.1f} | {rate / rates['hf'][0]:.2f}x |")
    print(f"| new vLLM engine (this run's start) | {engine_start:.1f} | | |")
    print(f"| in-engine switch to o from donor ({len(names)} tensors) | {switched:.3f} | | "
          f"{engine_start / switched:.0f}x faster than a new engine |")
    print(f"| in-engine switch back to the base | {switched_back:.3f} | | |")


if __name__ == "__main__":  # vLLM starts its engine in a spawned process, which re-imports this file
    main()
