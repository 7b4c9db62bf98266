"""CPU per LLM call: the engine vs bare litellm vs the bare openai SDK, against one fake server.

    python benchmarks/bench_llm_path.py [--calls 2000] [--concurrency 100] [--latency 0.2] [--runs 3]

The fake OpenAI-compatible server runs in its own process (its CPU is not counted). Each measurement is
a fresh Python process that imports its client, makes one warm-up call, then makes `--calls` single-item
calls `--concurrency` at a time; the figure is that process's CPU time (user + system, all threads)
over the calls, divided by the number of calls. The engine runs a playbook whose one step maps the
items with `batch: 1` (journal, cache, events, hooks, templates — everything a real run does).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.fake_server_process import fake_server  # noqa: E402


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Clock:
    """CPU and wall time from here to `stop()`."""

    def __init__(self) -> None:
        self.cpu, self.wall = cpu(), time.monotonic()

    def stop(self) -> tuple[float, float]:
        return cpu() - self.cpu, time.monotonic() - self.wall


def prompt(i: int) -> str:
    return f"把第 {i} 条评论归类：物流很慢，客服态度还行。"


async def bare_openai(url: str, calls: int, concurrency: int) -> tuple[float, float]:
    import asyncio

    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=url, api_key="none", max_retries=0)
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> str:
        async with gate:
            reply = await client.chat.completions.create(model="fake", temperature=0,
                                                         messages=[{"role": "user", "content": prompt(i)}])
            return reply.choices[0].message.content or ""

    await one(-1)
    clock = Clock()
    await asyncio.gather(*(one(i) for i in range(calls)))
    return clock.stop()


async def bare_litellm(url: str, calls: int, concurrency: int) -> tuple[float, float]:
    import asyncio

    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm

    litellm.suppress_debug_info = True
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> str:
        async with gate:
            reply = await litellm.acompletion(model="openai/fake", api_base=url, api_key="none", temperature=0,
                                              messages=[{"role": "user", "content": prompt(i)}])
            return str(reply.choices[0].message.content or "")

    await one(-1)
    clock = Clock()
    await asyncio.gather(*(one(i) for i in range(calls)))
    return clock.stop()


PLAYBOOK = """
name: llm_path
inputs: {n: {type: integer}}
steps:
  - id: classify
    map: ${{ range(inputs.n) | list }}
    batch: 1
    concurrency: %(concurrency)d
    llm: {prompt: "把第 ${{ item }} 条评论归类：物流很慢，客服态度还行。"}
outputs: {count: "${{ steps.classify.output | length }}"}
"""


async def engine(url: str, calls: int, concurrency: int, hooks: list[Any] | None = None,
                 toml_extra: str = "") -> tuple[float, float]:
    from runner.assembly import assemble
    from runner.config import load_project
    from runner.dsl.validate import load_and_validate
    from runner.models import litellm_provider

    folder = Path(tempfile.mkdtemp(prefix="bench_llm_path_"))
    (folder / "playbook.toml").write_text(
        f'[models.default]\nmodel = "openai/fake"\napi_base = "{url}"\nconcurrency = {concurrency}\n{toml_extra}')
    (folder / "pb.yaml").write_text(PLAYBOOK % {"concurrency": concurrency})
    os.chdir(folder)
    litellm_provider.litellm_module()  # the import is a fixed cost per process, not per call
    runner = assemble(load_project(folder), hooks=hooks or ())  # as every entry point does: with the process's
    # logs and metrics when on, and the project's traces
    playbook = load_and_validate(folder / "pb.yaml")
    warm = await runner.start(playbook, {"n": 1})
    assert warm.status == "done", warm.error
    (folder / "pb.yaml").write_text((PLAYBOOK % {"concurrency": concurrency}).replace("条评论", "条留言"))
    playbook = load_and_validate(folder / "pb.yaml")
    clock = Clock()
    outcome = await runner.start(playbook, {"n": calls})
    spent = clock.stop()
    assert outcome.status == "done" and outcome.outputs["count"] == calls, outcome.error
    return spent


async def engine_observed(url: str, calls: int, concurrency: int) -> tuple[float, float]:
    """The engine with what `playbook worker` turns on: JSON log lines (to a file, as for a log shipper) and
    Prometheus metrics, each line redacted."""
    from runner.observe import logs, metrics

    log = (Path(tempfile.mkdtemp(prefix="bench_llm_path_log_")) / "worker.log").open("w", encoding="utf-8")
    logs.configure(json_lines=True, stream=log, secrets=["sk-bench-7f3a9c1e5b2d"], worker="bench")
    metrics.enable()
    try:
        return await engine(url, calls, concurrency)  # assemble adds observe.process_hooks()
    finally:
        log.close()


async def engine_traced(url: str, calls: int, concurrency: int) -> tuple[float, float]:
    """The engine exporting OpenTelemetry spans (a run, a step, a batch and a chat span per call) to a receiver in
    another process (BENCH_OTLP, started by main), so only the exporting side's CPU is counted."""
    return await engine(url, calls, concurrency,
                        toml_extra=f'[trace]\notlp_endpoint = "{os.environ["BENCH_OTLP"]}"\n')


MODES = {"openai": bare_openai, "litellm": bare_litellm, "engine": engine, "engine_observed": engine_observed,
         "engine_traced": engine_traced}


@contextlib.contextmanager
def otlp_receiver() -> Iterator[str]:
    """runner.testing.OtlpReceiver in a process of its own; yields its endpoint."""
    code = ("import sys, threading; from runner.testing import OtlpReceiver\n"
            "with OtlpReceiver() as r:\n    print(r.url, flush=True); threading.Event().wait()")
    receiver = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout is not None
        yield receiver.stdout.readline().strip()
    finally:
        receiver.terminate()
        receiver.wait()


def measure(mode: str, url: str, calls: int, concurrency: int) -> dict[str, float]:
    """One fresh process: its CPU and wall time over the calls."""
    code = (f"import asyncio, json, sys; sys.path.insert(0, {str(ROOT)!r}); "
            f"from benchmarks.bench_llm_path import MODES; "
            f"c, w = asyncio.run(MODES[{mode!r}]({url!r}, {calls}, {concurrency})); "
            f"print(json.dumps({{'cpu': c, 'wall': w}}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modes", default="openai,litellm,engine")
    args = parser.parse_args()
    with fake_server(args.latency) as url, otlp_receiver() as otlp:
        os.environ["BENCH_OTLP"] = otlp
        modes = args.modes.split(",")
        figures: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
        for _ in range(args.runs):  # interleaved, so drift in machine load hits every mode alike
            for mode in modes:
                figures[mode].append(measure(mode, url, args.calls, args.concurrency))
        load = os.getloadavg()[0]
        print(f"{args.calls} calls, concurrency {args.concurrency}, latency {args.latency * 1000:.0f} ms, "
              f"{args.runs} runs, load average {load:.2f} at the end, {time.strftime('%Y-%m-%d %H:%M')}")
        base = statistics.median(f["cpu"] for f in figures[modes[0]]) / args.calls
        print("| client | CPU per call (median) | ratio to " + modes[0] + " | per-round ratios | "
              "wall over the calls (median) |")
        print("|---|---|---|---|---|")
        for mode in modes:
            per_call = statistics.median(f["cpu"] for f in figures[mode]) / args.calls
            wall = statistics.median(f["wall"] for f in figures[mode])
            rounds = sorted(f["cpu"] / b["cpu"] for f, b in zip(figures[mode], figures[modes[0]], strict=True))
            print(f"| {mode} | {per_call * 1000:.2f} ms | {per_call / base:.2f}× | {rounds[0]:.2f}–{rounds[-1]:.2f} | "
                  f"{wall:.1f} s |")


if __name__ == "__main__":
    main()
