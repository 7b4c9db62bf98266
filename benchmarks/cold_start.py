"""Cold start of `playbook --help` and `playbook validate`: wall and CPU of a fresh process, median of 9.

    python benchmarks/cold_start.py [playbook names ...]   (default: every shipped playbook)

Run from the clone. Python's bytecode cache is allowed (one run first writes it), as on a user's machine;
with PYTHONDONTWRITEBYTECODE set every process compiles the sources again (about 0.1 s more).
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"


def measure(args: list[str], n: int = 9) -> tuple[float, float]:
    walls, cpus = [], []
    subprocess.run([sys.executable, "-m", "runner", *args], env=env, capture_output=True)  # write the bytecode cache
    for _ in range(n):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "runner", *args], env=env, capture_output=True)
        walls.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    names = sys.argv[1:] or sorted(p.stem for p in Path("playbooks").glob("*.yaml"))
    print("| command | wall (median of 9) | CPU |\n|---|---|---|")
    for args in (["--help"], *(["validate", f"playbooks/{name}.yaml"] for name in names)):
        wall, cpu = measure(args)
        print(f"| `playbook {' '.join(args)}` | {wall:.2f} s | {cpu:.2f} s |")


if __name__ == "__main__":
    main()
