"""Module plugins at run time: switching plugins vs loading another full model, and memory of one base
with N plugins vs N full models, on the Qwen2.5-0.5B-shaped pair of bench_merge.py.

    python benchmarks/bench_plugins.py [--plugins 3] [--select o,norm]

Each measurement runs in a child process under /usr/bin/time -v (peak RSS).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

from measure import WORK, synthetic_pair

SWITCH = """
import json, sys, time
from sfn.stethoscopes.surgery import PluggableModel
base, plugins = sys.argv[1], sys.argv[2:]
model = PluggableModel(base)
touch = sum(float(p.float().sum()) for p in model.model.parameters())  # page every weight in, as inference would
for i, path in enumerate(plugins):
    model.add(f"p{i}", path)
names = [f"p{i}" for i in range(len(plugins))] + [None]
start = time.perf_counter()
model.use("p0")
first = time.perf_counter() - start
for name in names:  # first write into each part (copy-on-write of the loaded pages) is not a switch cost
    model.use(name)
start = time.perf_counter()
rounds = 10
for _ in range(rounds):
    for name in names:
        model.use(name)
switch = (time.perf_counter() - start) / (rounds * len(names))
print(json.dumps({"switch_s": switch, "first_s": first, "plugin_mb": model.plugin_bytes("p0") / 2**20}))
"""
LOAD = """
import json, sys, time
from transformers import AutoModelForCausalLM
models, times = [], []
for path in sys.argv[1:]:
    start = time.perf_counter()
    models.append(AutoModelForCausalLM.from_pretrained(path))
    touch = sum(float(p.float().sum()) for p in models[-1].parameters())  # page every weight in
    times.append(time.perf_counter() - start)
print(json.dumps({"load_s": min(times)}))
"""


def run_json(code: str, *args: str) -> tuple[dict, float]:
    result = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-c", code, *args], capture_output=True, text=True)
    if result.returncode:
        sys.exit(result.stderr[-3000:])
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)[1]) / 1024
    return json.loads(result.stdout.strip().splitlines()[-1]), rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugins", type=int, default=3)
    parser.add_argument("--select", default="o,norm")
    args = parser.parse_args()
    from sfn.stethoscopes.surgery import apply_plugin, extract_plugin

    base, tuned = synthetic_pair("qwen2.5-0.5b")
    plugin = WORK / "plugin-0.safetensors"
    extract_plugin(base, tuned, args.select, plugin, overwrite=True)
    plugins = [plugin] * args.plugins  # attached under N names: N copies in memory, as N different plugins would be
    # Separate copies: N tuned models are N different files, which share no page cache.
    fulls = [WORK / f"plugin-applied-{i}" for i in range(args.plugins)]
    for full in fulls:
        if not full.exists():
            apply_plugin(base, plugin, full)
    switch, pluggable_rss = run_json(SWITCH, str(base), *map(str, plugins))
    load, full_rss = run_json(LOAD, *map(str, fulls))
    print(f"plugin {args.select!r}: {plugin.stat().st_size / 2**20:.1f} MiB on disk, {switch['plugin_mb']:.1f} MiB in memory")
    print(
        f"switch between plugins: {switch['switch_s'] * 1000:.1f} ms (first use {switch['first_s'] * 1000:.0f} ms); "
        f"load a full model and page its weights in: {load['load_s'] * 1000:.0f} ms"
    )
    print(f"peak RSS, base + {args.plugins} plugins: {pluggable_rss:.0f} MiB; {args.plugins} full models: {full_rss:.0f} MiB")


if __name__ == "__main__":
    main()
