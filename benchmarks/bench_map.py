"""Time of the single-layer transplant map of SmolLM2-135M-Instruct (7 linear kinds x 30 layers, plus a
whole-model row per kind) on about 2,048 probe tokens, and the saving from starting each cell's pass at
its first layer (prefix reuse), measured on the same cells in the same run.

R is B with every linear weight moved by a fixed-seed 1% perturbation (the timing does not depend on
what R learned); the probe is GSM8K train solutions as texts (../shared/data), about 2,048 answer tokens.

    python benchmarks/bench_map.py [--model FILE.gguf] [--tokens 2048] [--threads 2] [--full]

Without --full it times the o-only map (31 cells) with and without prefix reuse and projects the full
map (217 cells) from the per-cell time with reuse; --full times the full map itself (with reuse) instead.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import torch

from measure import WORK


def smollm2_file() -> Path:
    from sfn.io.smollm2 import INSTALL, smollm2_gguf

    return smollm2_gguf() or sys.exit(f"needs the SmolLM2 GGUF: {INSTALL}")


def probe_file(tokenizer, tokens: int) -> Path:
    # ../shared/data beside the checkout, or wherever SFN_SHARED_DATA points (git worktrees live elsewhere).
    shared = Path(os.environ.get("SFN_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared/data"))
    data = shared / "gsm8k/train.jsonl"
    rows, total = [], 0
    for line in data.read_text().splitlines():
        row = json.loads(line)
        rows.append({"prompt": f"Question: {row['question']}\nAnswer:", "text": " " + row["answer"]})
        total += len(tokenizer(rows[-1]["text"], add_special_tokens=False)["input_ids"])
        if total >= tokens:
            break
    path = WORK / "map_probe.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--full", action="store_true", help="time the full 7-kind map instead (long)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                        help="the pair's dtype (bfloat16: B and R stored as bf16, as released checkpoints are)")
    parser.add_argument("--compare", action="store_true",
                        help="with --dtype bfloat16: also run the o-only map on the same bf16 weights upcast to "
                             "fp32 and report how far the bf16 map is from it")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import sfn
    from sfn.experiments.maps import map as make_map

    dtype = getattr(torch, args.dtype)
    base, tokenizer = sfn.load_model(args.model or smollm2_file(), dtype=torch.float32)
    tuned = copy.deepcopy(base)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in tuned.named_parameters():
            if parameter.dim() == 2 and "embed" not in name:
                parameter.mul_(1 + 0.01 * torch.randn(parameter.shape, generator=generator))
    # The perturbation is drawn in fp32 and each model rounded once, so a bf16 R differs from a bf16 B
    # by the rounded 1% change, as a bf16 fine-tune differs from its bf16 base.
    base, tuned = base.to(dtype), tuned.to(dtype)
    probe = probe_file(tokenizer, args.tokens)
    common = dict(modes=["transplant"], probes=[str(probe)], tokenizer=tokenizer, progress=True)
    rows = []
    load = os.getloadavg()
    runs = [("full transplant map, prefix reuse on", "q,k,v,o,gate,up,down", True)] if args.full else [
        ("o only, prefix reuse on", "o", True), ("o only, prefix reuse off", "o", False)]
    for label, kinds, reuse in runs:
        started = time.perf_counter()
        result = make_map(base, tuned, kinds=kinds, reuse_prefix=reuse, **common)
        rows.append((label, len(result.table), time.perf_counter() - started))
    tokens = result.summary["probes"]["map_probe"]["tokens"]
    if args.compare and dtype != torch.float32:
        fast = make_map(base, tuned, kinds="o", **common).table
        started = time.perf_counter()
        exact = make_map(copy.deepcopy(base).to(torch.float32), copy.deepcopy(tuned).to(torch.float32), kinds="o", **common).table
        rows.append(("o only, the same weights in fp32", len(exact), time.perf_counter() - started))
        print(agreement(fast, exact))
    print(f"SmolLM2-135M-Instruct {args.dtype}, {tokens} probe tokens, {args.threads} threads, load average before {load[0]:.2f}, "
          f"after {os.getloadavg()[0]:.2f}")
    print("| run | cells | seconds | seconds per cell |")
    print("|---|---|---|---|")
    for label, cells, seconds in rows:
        print(f"| {label} | {cells} | {seconds:.1f} | {seconds / cells:.2f} |")
    if not args.full:
        print(f"prefix reuse saves {1 - rows[0][2] / rows[1][2]:.0%} of the o-only map's time; the full map "
              f"(217 cells) at the reuse rate: {217 * rows[0][2] / rows[0][1] / 60:.1f} min")

def agreement(fast, exact) -> str:
    """How far a map computed in bf16 is from the same cells computed in fp32."""
    joined = fast.merge(exact, on=["mode", "kind", "layers", "probe"], suffixes=("_bf16", "_fp32"))
    share = joined["recovered_share_bf16"] - joined["recovered_share_fp32"]
    kl = (joined["kl_to_tuned_bf16"] / joined["kl_to_tuned_fp32"] - 1).abs()
    windows = joined[joined["layers"] != "all"]
    top = lambda column: set(windows.nlargest(5, column)["layers"])  # noqa: E731
    return (f"bf16 against fp32 on {len(joined)} cells: Spearman of recovered_share "
            f"{joined['recovered_share_bf16'].corr(joined['recovered_share_fp32'], method='spearman'):.4f}, "
            f"largest |difference| {share.abs().max():.4f}, kl_to_tuned relative difference median "
            f"{kl.median():.2%} max {kl.max():.2%}, top-5 windows shared "
            f"{len(top('recovered_share_bf16') & top('recovered_share_fp32'))}/5")


if __name__ == "__main__":
    main()
