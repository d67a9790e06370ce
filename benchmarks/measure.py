"""What the benchmark scripts share: the work folder, generated pairs, cold caches, timed child runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"  # git-ignored
CHECKOUT = HERE.parent  # the sfn these benchmarks measure, unless a run names another


def synthetic_pair(shape: str) -> tuple[Path, Path]:
    """(base, tuned) of `sfn.synthetic.make_pair(shape)` under WORK, generated on first use."""
    folder = WORK / shape
    if not (folder / "tuned" / "config.json").exists():
        from sfn.synthetic import make_pair

        make_pair(folder, shape)
    return folder / "base", folder / "tuned"


def drop_caches(resident_gib: float = 0.0) -> bool:
    """Empty the page cache (needs root); False when not allowed.

    With `resident_gib`, then touch and free that much memory. A VM that hands free memory back to
    its host (free page reporting: this project's VMs do, `/sys/module/page_reporting`) makes the
    first use of memory freed more than ~2 s earlier cost ~2.8 s of CPU per GiB (measured: a cold
    read of 6.2 GB took 3.0 s right after a drop and 13.8 s when the drop came 30 s earlier). Touching
    the memory first gives the next run the resident memory an ordinary machine has, whatever ran
    before it; without it the first run after a pause pays for everyone.
    """
    subprocess.run(["sync"], check=False)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    if resident_gib > 0:
        import numpy as np

        np.ones(int(resident_gib * 2**30) // 8)  # allocated, written and freed
    return True


PAGE_REPORTING = Path("/sys/module/page_reporting/parameters")


def page_reporting() -> str:
    """How this VM hands free memory back to its host, for a table's header: the resident memory
    `drop_caches` makes lasts only until the guest reports the freed pages (on 2026-12-07, with
    min_free_ms=0, 0.9 GB of a dropped 5.8 GB page cache was reported within a second and 3.5 GB
    within ten)."""
    if not PAGE_REPORTING.is_dir():
        return "no free page reporting"
    names = ("min_free_ms", "max_waiting_mib", "page_reporting_order")
    values = {n: (PAGE_REPORTING / n).read_text().strip() for n in names if (PAGE_REPORTING / n).is_file()}
    return "free page reporting: " + " ".join(f"{n}={v}" for n, v in values.items())


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of a child process, from /usr/bin/time -v."""
    return timed_cpu(command)[:2]


def timed_cpu(command: list[str]) -> tuple[float, float, float]:
    """(wall seconds, peak RSS MiB, user + system CPU seconds) of a child process. On a shared,
    loaded machine CPU seconds compare runs better than wall time, which includes waiting for a core.

    The child starts in benchmarks/: `python -m` and `-c` put the working directory first on sys.path,
    so started in a checkout's root a child would import that checkout's sfn whatever PYTHONPATH says."""
    result = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True, cwd=HERE)
    if result.returncode:
        sys.exit(f"{' '.join(command)[:200]} failed:\n{result.stderr[-3000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", result.stderr)
    hours, minutes, seconds = (float(x) if x else 0.0 for x in wall.groups())
    rss_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)[1])
    cpu = sum(float(re.search(rf"{kind} time \(seconds\): ([\d.]+)", result.stderr)[1]) for kind in ("User", "System"))
    return hours * 3600 + minutes * 60 + seconds, rss_kib / 1024, cpu
