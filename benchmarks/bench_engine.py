"""Engine benchmarks: step overhead vs raw LangGraph, map scaling, CLI cold start.

    python benchmarks/bench_engine.py [--quick]
    python benchmarks/bench_engine.py --chain-sizes 50,100,200,400,1000 [--rounds 5]

Prints a markdown table (medians of repeated runs, all measured in this one process run). `--chain-sizes` prints
only the per-step CPU of the engine against raw LangGraph on chains of those sizes, the two interleaved round by
round.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from runner.config import load_project  # noqa: E402
from runner.dsl.validate import load_and_validate  # noqa: E402
from runner.engine.compile import DURABILITY  # noqa: E402
from runner.engine.execute import Runner  # noqa: E402
from runner.registry import ToolContext, tool  # noqa: E402
from runner.testing import FakeLLMServer  # noqa: E402


class NoopIn(BaseModel):
    value: int = 0


class NoopOut(BaseModel):
    value: int


@tool("bench.noop")
async def noop(args: NoopIn, ctx: ToolContext) -> NoopOut:
    """Does nothing: isolates the engine's own cost per step."""
    return NoopOut(value=args.value + 1)


def merge(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any]:
    return {**(a or {}), **(b or {})}


class RawState(TypedDict, total=False):
    steps: Annotated[dict[str, Any], merge]


def chain_playbook(steps: int) -> str:
    lines = ["name: chain", "steps:"]
    for i in range(steps):
        arg = "0" if i == 0 else f'"${{{{ steps.s{i - 1}.value }}}}"'
        lines.append(f"  - {{id: s{i}, tool: bench.noop, with: {{value: {arg}}}}}")
    return "\n".join(lines) + "\n"


async def raw_langgraph(steps: int, db: Path, clock: Any = time.perf_counter) -> float:
    """The same shape in plain LangGraph: a chain of nodes, merge reducer, AsyncSqliteSaver.
    Timed like the engine's run: graph construction, compile and invoke."""
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
    from langgraph.graph import END, START, StateGraph

    started = clock()
    graph: Any = StateGraph(RawState)
    for i in range(steps):
        def node(state: dict[str, Any], i: int = i) -> dict[str, Any]:
            previous = state.get("steps", {}).get(f"s{i - 1}", {}).get("value", 0)
            return {"steps": {f"s{i}": {"value": previous + 1}}}

        graph.add_node(f"s{i}", node)
        graph.add_edge(START if i == 0 else f"s{i - 1}", f"s{i}")
    graph.add_edge(f"s{steps - 1}", END)
    async with AsyncSqliteSaver.from_conn_string(str(db)) as saver:
        app = graph.compile(checkpointer=saver)
        # checkpointed as the engine does (runner/engine/compile.py DURABILITY: when the graph stops, not per step)
        await app.ainvoke({"steps": {}}, {"configurable": {"thread_id": str(time.time())}}, durability=DURABILITY)
        return float(clock() - started)


def engine_run(path: Path, inputs: dict[str, Any] | None = None, clock: Any = time.perf_counter) -> float:
    playbook = load_and_validate(path)
    runner = Runner(load_project())
    started = clock()
    outcome = asyncio.run(runner.start(playbook, inputs or {}))
    elapsed = float(clock() - started)
    runner.close()
    assert outcome.status == "done", outcome.error
    return elapsed


def median(values: list[float]) -> float:
    return statistics.median(values)


def bench_overhead(folder: Path, steps: int, repeats: int) -> tuple[float, float]:
    path = folder / "chain.yaml"
    path.write_text(chain_playbook(steps), encoding="utf-8")
    ours = [engine_run(path) / steps for _ in range(repeats)]
    raw = [asyncio.run(raw_langgraph(steps, folder / "raw.db")) / steps for _ in range(repeats)]
    return median(ours), median(raw)


MAP_PLAYBOOK = """
name: mapbench
inputs: {n: {type: integer}}
defaults: {temperature: 0.7}
steps:
  - id: label
    map: "${{ range(inputs.n) | list }}"
    batch: 20
    concurrency: 8
    llm: {prompt: "评论 ${{ item }}", output: {sentiment: {enum: [正面, 中性, 负面]}, topic: string}}
"""


def bench_map(folder: Path, server: FakeLLMServer, n: int, latency: float, repeats: int) -> float:
    server.latency = latency
    path = folder / "map.yaml"
    path.write_text(MAP_PLAYBOOK, encoding="utf-8")
    return median([engine_run(path, {"n": n}) for _ in range(repeats)])


def cold_start(args: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "runner", *args], cwd=ROOT, capture_output=True, check=False)
        times.append(time.perf_counter() - started)
    return median(times)


def chain_sizes(sizes: list[int], rounds: int) -> None:
    """CPU per step (this process's CPU: user + system, every thread), engine against raw LangGraph, interleaved."""
    print("| steps | engine CPU per step | raw LangGraph CPU per step | ratio (median) | per-round ratios |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.chdir(folder)
        engine_run(_chain(folder, 5), clock=time.process_time)  # imports and first-run work out of the figures
        asyncio.run(raw_langgraph(5, folder / "raw.db", clock=time.process_time))
        for steps in sizes:
            path = _chain(folder, steps)
            ours, raw = [], []
            for _ in range(rounds):
                ours.append(engine_run(path, clock=time.process_time) / steps)
                raw.append(asyncio.run(raw_langgraph(steps, folder / "raw.db", clock=time.process_time)) / steps)
            ratios = sorted(o / r for o, r in zip(ours, raw, strict=True))
            print(f"| {steps:,} | {median(ours) * 1000:.2f} ms | {median(raw) * 1000:.2f} ms | "
                  f"{median(ratios):.2f}× | {ratios[0]:.2f}–{ratios[-1]:.2f} |", flush=True)


def _chain(folder: Path, steps: int) -> Path:
    path = folder / f"chain{steps}.yaml"
    path.write_text(chain_playbook(steps), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller maps")
    parser.add_argument("--chain-sizes", help="comma-separated chain lengths: only the per-step CPU table")
    parser.add_argument("--rounds", type=int, default=5, help="rounds for --chain-sizes")
    opts = parser.parse_args()
    if opts.chain_sizes:
        chain_sizes([int(n) for n in opts.chain_sizes.split(",")], opts.rounds)
        return
    repeats = 3 if opts.quick else 5
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp, FakeLLMServer() as server:
        folder = Path(tmp)
        (folder / "playbook.toml").write_text(server.toml(), encoding="utf-8")
        os.environ["FAKE_LLM_API_KEY"] = "bench"
        os.chdir(folder)
        ours, raw = bench_overhead(folder, 50, repeats)
        rows.append(("per step, 50-step chain: engine / raw LangGraph (same checkpointer)",
                     f"{ours * 1000:.2f} ms / {raw * 1000:.2f} ms", f"{ours / raw:.2f}× (target ≤ 1.5×)"))
        sizes = (1000, 10000) if not opts.quick else (1000, 5000)
        for latency in (0.0, 0.2):
            times = {n: bench_map(folder, server, n, latency, 3 if n > 1000 else repeats) for n in sizes}
            for n, seconds in times.items():
                ideal = math.ceil(n / (20 * 8)) * latency
                vs = f"{seconds / ideal:.2f}× ideal {ideal:.1f} s (target ≤ 1.5×)" if latency else ""
                rows.append((f"map {n:,} items, batch 20, concurrency 8, {latency * 1000:.0f} ms latency",
                             f"{seconds:.2f} s", vs))
            big, small = sizes[1], sizes[0]
            rows.append((f"map {big:,} / {small:,} items at {latency * 1000:.0f} ms",
                         f"{times[big] / times[small]:.2f}×", f"target ≤ {1.1 * big / small:.0f}×"))
    validate = ["validate", str(ROOT / "playbooks" / "feedback_digest.yaml")]
    commands = (("`playbook --help`", ["--help"]), ("`playbook validate feedback_digest.yaml`", validate))
    for label, args in commands:
        rows.append((f"cold start {label}", f"{cold_start(args, repeats):.2f} s", "target ≤ 1.0 s"))
    print("| measure | median | ratio / target |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
