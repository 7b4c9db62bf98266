"""Compile time by playbook size: validate, branch planning and the whole compile (LangGraph's own included).

    python benchmarks/bench_compile.py [--sizes 50,100,200,400,1000] [--rounds 3]

Three shapes of N template steps (no model, no tool: only the planning is measured):
- chain: each step needs the one before (the common playbook, grown long);
- diamonds: fan out to 3, fan back in, repeated (a series of parallel sections);
- lanes: 4 independent chains of N/4 steps that join at a last step (parallel work that meets once).
Prints a markdown table of medians (seconds) measured in this one process run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.dsl.validate import load_and_validate  # noqa: E402
from runner.engine.compile import branches_of, compile_graph  # noqa: E402


def step(i: int, needs: list[int]) -> str:
    after = f", needs: [{', '.join(f's{n}' for n in needs)}]" if needs else ""
    return f"  - {{id: s{i}, template: \"${{{{ {i} }}}}\"{after}}}\n"


def chain(n: int) -> str:
    return "".join(step(i, [i - 1] if i else []) for i in range(n))


def diamonds(n: int) -> str:
    lines, last = [step(0, [])], 0
    i = 1
    while i + 4 <= n:
        lines += [step(i, [last]), step(i + 1, [last]), step(i + 2, [last]), step(i + 3, [i, i + 1, i + 2])]
        last, i = i + 3, i + 4
    lines += [step(j, [j - 1]) for j in range(i, n)]
    return "".join(lines)


def lanes(n: int) -> str:
    width = (n - 1) // 4
    lines = []
    for lane in range(4):
        for k in range(width):
            i = lane * width + k
            lines.append(step(i, [i - 1] if k else []))
    lines.append(step(4 * width, [lane * width + width - 1 for lane in range(4)]))
    return "".join(lines)


SHAPES: dict[str, Callable[[int], str]] = {"chain": chain, "diamonds": diamonds, "lanes": lanes}


def timed(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="50,100,200,400,1000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shapes", default="chain,diamonds,lanes")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench_compile_"))
    print("| shape | steps | validate | branch planning | compile (LangGraph included) |")
    print("|---|---|---|---|---|")
    for shape in args.shapes.split(","):
        for n in (int(s) for s in args.sizes.split(",")):
            path = folder / f"{shape}_{n}.yaml"
            path.write_text(f"name: {shape}\nsteps:\n{SHAPES[shape](n)}", encoding="utf-8")
            playbook = load_and_validate(path)
            validate = timed(lambda p=path: load_and_validate(p), args.rounds)  # type: ignore[misc]
            plan = timed(lambda pb=playbook: branches_of(pb), args.rounds)  # type: ignore[misc]

            def node(_step: object) -> Callable[[dict[str, object]], dict[str, object]]:
                return lambda state: {}

            whole = timed(lambda pb=playbook: compile_graph(pb, node), args.rounds)  # type: ignore[misc]
            print(f"| {shape} | {n} | {validate:.3f} s | {plan:.3f} s | {whole:.3f} s |", flush=True)


if __name__ == "__main__":
    main()
