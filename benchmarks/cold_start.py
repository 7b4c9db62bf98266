"""Cold start of `playbook --help` and `playbook validate`: wall and CPU of a fresh process, median of 9.

    python benchmarks/cold_start.py [playbook names ...]   (default: every shipped playbook)
    python benchmarks/cold_start.py --help-yardsticks       (`--help` against typer's own costs)

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


TWO_COMMANDS = """
import typer
app = typer.Typer(rich_markup_mode="rich")
@app.command()
def hello(name: str = "x") -> None:
    \"\"\"Say hello.\"\"\"
@app.command()
def bye() -> None:
    \"\"\"Say goodbye.\"\"\"
app()
"""


def help_yardsticks(n: int = 15) -> None:
    """`playbook --help` against what any typer CLI with rich help pays: importing typer and rich, importing typer's
    rich help module (what renders every help screen), and a two-command typer app's own `--help`."""
    def cpu(args: list[str]) -> float:
        values = []
        for _ in range(n):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run(args, env=env, capture_output=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            values.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        return statistics.median(values)

    figures = {name: cpu(args) for name, args in (
        ("`import typer, rich`", [sys.executable, "-c", "import typer, rich"]),
        ("`import typer.rich_utils`", [sys.executable, "-c", "import typer, typer.rich_utils"]),
        ("a two-command typer app's `--help`", [sys.executable, "-c", TWO_COMMANDS, "--help"]),
        ("`playbook --help`", [sys.executable, "-m", "runner", "--help"]))}
    ours = figures["`playbook --help`"]
    print(f"| process (median of {n}) | CPU | `playbook --help` / it |\n|---|---|---|")
    for name, value in figures.items():
        print(f"| {name} | {value:.3f} s | {ours / value:.2f}× |")


def main() -> None:
    if sys.argv[1:] == ["--help-yardsticks"]:
        help_yardsticks()
        return
    names = sys.argv[1:] or sorted(p.stem for p in Path("playbooks").glob("*.yaml"))
    print("| command | wall (median of 9) | CPU |\n|---|---|---|")
    for args in (["--help"], *(["validate", f"playbooks/{name}.yaml"] for name in names)):
        wall, cpu = measure(args)
        print(f"| `playbook {' '.join(args)}` | {wall:.2f} s | {cpu:.2f} s |")


if __name__ == "__main__":
    main()
