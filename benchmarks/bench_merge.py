"""sfn merge vs mergekit on the paper's atomic merge: the o_proj swap of a Qwen2.5-0.5B-shaped pair.

    python benchmarks/bench_merge.py [--repeat 2]

Generates two random bf16 models shaped like Qwen2.5-0.5B (24 layers, hidden 896, MLP 4864, 14/2
heads, vocab 151936, tied embeddings) under benchmarks/work/, then runs each tool in a child process
under /usr/bin/time -v: `sfn.merge(base, donor, "o", out)` and `mergekit-yaml` with a `linear` merge
whose per-filter weights take o_proj from the donor (1/0) and everything else from the base (0/1).
Checks that both outputs hold bit-identical tensors and prints wall time and peak RSS of each.
mergekit runs from its own venv (benchmarks/work/mergekit-venv) so its pins never touch this one:
    python -m venv --system-site-packages benchmarks/work/mergekit-venv
    benchmarks/work/mergekit-venv/bin/pip install mergekit
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from safetensors.torch import save_file

WORK = Path(__file__).resolve().parent / "work"
MERGEKIT = WORK / "mergekit-venv" / "bin" / "mergekit-yaml"
SHAPE = dict(hidden=896, intermediate=4864, layers=24, heads=14, kv_heads=2, vocab=151936)


def qwen_like_tensors(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    h, i, kv = SHAPE["hidden"], SHAPE["intermediate"], SHAPE["kv_heads"] * SHAPE["hidden"] // SHAPE["heads"]

    def rand(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape, generator=generator) * 0.02).to(torch.bfloat16)

    tensors = {"model.embed_tokens.weight": rand(SHAPE["vocab"], h), "model.norm.weight": rand(h)}
    for layer in range(SHAPE["layers"]):
        p = f"model.layers.{layer}."
        tensors |= {
            p + "self_attn.q_proj.weight": rand(h, h), p + "self_attn.q_proj.bias": rand(h),
            p + "self_attn.k_proj.weight": rand(kv, h), p + "self_attn.k_proj.bias": rand(kv),
            p + "self_attn.v_proj.weight": rand(kv, h), p + "self_attn.v_proj.bias": rand(kv),
            p + "self_attn.o_proj.weight": rand(h, h),
            p + "mlp.gate_proj.weight": rand(i, h), p + "mlp.up_proj.weight": rand(i, h),
            p + "mlp.down_proj.weight": rand(h, i),
            p + "input_layernorm.weight": rand(h), p + "post_attention_layernorm.weight": rand(h),
        }
    return tensors


def make_pair() -> tuple[Path, Path]:
    from transformers import Qwen2Config

    pair = WORK / "qwen2.5-0.5b-shaped"
    config = Qwen2Config(
        hidden_size=SHAPE["hidden"], intermediate_size=SHAPE["intermediate"], num_hidden_layers=SHAPE["layers"],
        num_attention_heads=SHAPE["heads"], num_key_value_heads=SHAPE["kv_heads"], vocab_size=SHAPE["vocab"],
        tie_word_embeddings=True, max_position_embeddings=32768, rope_theta=1e6, rms_norm_eps=1e-6, dtype="bfloat16",
        architectures=["Qwen2ForCausalLM"],
    )
    for seed, role in ((0, "base"), (1, "donor")):
        directory = pair / role
        if not (directory / "model.safetensors").exists():
            directory.mkdir(parents=True, exist_ok=True)
            save_file(qwen_like_tensors(seed), directory / "model.safetensors", metadata={"format": "pt"})
            config.save_pretrained(directory)
    return pair / "base", pair / "donor"


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of a child process, from /usr/bin/time -v."""
    result = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"{command[0]} failed:\n{result.stderr[-3000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", result.stderr)
    hours, minutes, seconds = (float(g) if g else 0.0 for g in wall.groups())
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)[1])
    return hours * 3600 + minutes * 60 + seconds, rss_kb / 1024


def mergekit_config(base: Path, donor: Path) -> Path:
    path = WORK / "mergekit-o-swap.yml"
    path.write_text(textwrap.dedent(f"""\
        merge_method: linear
        dtype: bfloat16
        models:
          - model: {base}
            parameters:
              weight:
                - filter: o_proj
                  value: 0
                - value: 1
          - model: {donor}
            parameters:
              weight:
                - filter: o_proj
                  value: 1
                - value: 0
        """))
    return path


def compare(first: Path, second: Path) -> int:
    from sfn.io import open_checkpoint

    with open_checkpoint(first) as a, open_checkpoint(second) as b:
        names = set(a.tensors()) & set(b.tensors())
        extra = set(a.tensors()) ^ set(b.tensors())
        if extra:
            print(f"tensors in only one output: {sorted(extra)}")
        differing = [n for n in sorted(names) if not torch.equal(a.read(n), b.read(n))]
        if differing:
            sys.exit(f"outputs differ in {len(differing)} tensors, first {differing[0]}")
    return len(names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each tool; the fastest is reported")
    args = parser.parse_args()
    if not MERGEKIT.exists():
        sys.exit(f"mergekit is not installed at {MERGEKIT}; see this script's docstring")
    base, donor = make_pair()
    sfn_out, mergekit_out = WORK / "out-sfn", WORK / "out-mergekit"
    sfn_command = [sys.executable, "-c", f"from sfn.surgery import merge; merge({str(base)!r}, {str(donor)!r}, 'o', {str(sfn_out)!r}, overwrite=True)"]
    mergekit_command = [str(MERGEKIT), str(mergekit_config(base, donor)), str(mergekit_out), "--quiet"]
    results = {}
    for name, command, out in (("sfn merge", sfn_command, sfn_out), ("mergekit linear", mergekit_command, mergekit_out)):
        runs = []
        for _ in range(args.repeat):
            shutil.rmtree(out, ignore_errors=True)
            runs.append(timed(command))
        results[name] = (min(r[0] for r in runs), max(r[1] for r in runs))
    count = compare(sfn_out, mergekit_out)
    print(f"{count} tensors bit-identical in both outputs")
    print(f"{'tool':<16} {'wall s':>8} {'peak RSS MiB':>13}")
    for name, (wall, rss) in results.items():
        print(f"{name:<16} {wall:8.2f} {rss:13.0f}")


if __name__ == "__main__":
    main()
