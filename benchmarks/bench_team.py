"""A team server's scale-out and its store's cost, on throw-away Postgres and Redis servers.

1. The same map of 10,000 items (batch 20, step concurrency 16, 200 ms per call) on 1, 2 and 4 workers, each
   `playbook worker --concurrency 1` (one run or chunk at a time), map_chunk 1,000: wall time from `run
   --detach` to done (median of --repeat), against the ideal ⌈N / (batch · concurrency · workers)⌉ · latency;
   and the part of it the `run --detach` command itself took (a process start, then one message).
2. Postgres against SQLite per step: a run of 30 quick LLM steps (no latency), in this process through the
   Runner, median of --runs.

    python benchmarks/bench_team.py [--items 10000] [--workers 1,2,4] [--repeat 3] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.fake_server_process import fake_server
from runner.testing.servers import PostgresServer, RedisServer, WorkerPool

MAP = """
name: bigmap
inputs: {n: {type: integer}}
steps:
  - id: label
    map: "${{ range(inputs.n) | list }}"
    batch: 20
    concurrency: 16
    llm: {prompt: "标注第 ${{ item }} 条", output: {tag: string}}
outputs: {n: "${{ steps.label.output | length }}"}
"""

STEPS = "name: steps\nsteps:\n" + "".join(f"  - {{id: s{i}, llm: {{prompt: 第 {i} 步}}}}\n" for i in range(30)) + \
    'outputs: {last: "${{ steps.s29.output }}"}\n'


def _toml(url: str, store: str | None, broker: str | None) -> str:
    text = (f'[models.default]\nmodel = "openai/fake"\napi_base = "{url}"\napi_key_env = "FAKE_LLM_API_KEY"\n'
            'structured_output = true\nconcurrency = 64\n')
    if store:
        text += f'\n[store]\nurl = "{store}"\n'
    if broker:
        text += f'\n[queue]\nbroker = "{broker}"\nmap_chunk = 1000\n'
    return text


def scale_out(items: int, worker_counts: list[int], repeat: int, postgres: PostgresServer,
              redis: RedisServer) -> None:
    with fake_server(0.2) as url:
        print(f"map of {items:,} items, batch 20, step concurrency 16, 200 ms per call, map_chunk 1,000, "
              f"median of {repeat}")
        db = 0
        for workers in worker_counts:
            walls, enqueues = [], []
            for _ in range(repeat):
                db += 1
                wall, enqueue = _one_map(url, items, workers, postgres.new_database(), redis.url(db))
                walls.append(wall)
                enqueues.append(enqueue)
            wall = statistics.median(walls)
            ideal = math.ceil(items / (20 * 16 * workers)) * 0.2
            print(f"  {workers} worker(s): {wall:.1f} s (runs: {', '.join(f'{w:.1f}' for w in walls)}), of which "
                  f"`run --detach` {statistics.median(enqueues):.1f} s; ideal {ideal:.1f} s, {wall / ideal:.2f}×")


def _one_map(url: str, items: int, workers: int, store_url: str, broker: str) -> tuple[float, float]:
    """(seconds from `run --detach` to done, seconds the command took)."""
    import subprocess

    from runner.config import load_project
    from runner.store import open_store

    folder = Path(tempfile.mkdtemp(prefix="bench-team-"))
    (folder / "playbook.toml").write_text(_toml(url, store_url, broker), encoding="utf-8")
    (folder / "pb.yaml").write_text(MAP, encoding="utf-8")
    pool = WorkerPool(folder, {"FAKE_LLM_API_KEY": "x", "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    for k in range(workers):
        pool.start(f"w{k}")
    pool.wait_ready()
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "runner", "run", "pb.yaml", "-i", f"n={items}", "--run-id", "b",
                    "--detach"], cwd=folder, check=True, capture_output=True)
    enqueued = time.monotonic() - started
    store = open_store(load_project(folder))
    while (run := store.get_run("b")) is None or run["status"] not in ("done", "failed"):
        time.sleep(0.05)
    wall = time.monotonic() - started
    store.close()
    pool.close()
    assert run["status"] == "done", run["error"]
    return wall, enqueued


def per_step(runs: int, postgres: PostgresServer) -> None:
    from runner.config import load_project
    from runner.dsl.validate import load_and_validate
    from runner.engine.execute import Runner

    os.environ["FAKE_LLM_API_KEY"] = "x"
    with fake_server(0.0) as url:
        figures: dict[str, list[float]] = {"sqlite": [], "postgres": []}
        for kind in ("sqlite", "postgres") * runs:
            folder = Path(tempfile.mkdtemp(prefix="bench-store-"))
            store = postgres.new_database() if kind == "postgres" else None
            (folder / "playbook.toml").write_text(_toml(url, store, None), encoding="utf-8")
            (folder / "pb.yaml").write_text(STEPS, encoding="utf-8")
            runner = Runner(load_project(folder))
            playbook = load_and_validate(folder / "pb.yaml")
            started = time.perf_counter()
            outcome = asyncio.run(runner.start(playbook, {}))
            figures[kind].append((time.perf_counter() - started) / 30)
            assert outcome.status == "done", outcome.error
            runner.close()
        sqlite, pg = (statistics.median(figures[k][1:] or figures[k]) * 1000 for k in ("sqlite", "postgres"))
        print(f"30 quick LLM steps, median of {runs} (first run of each left out: imports): "
              f"SQLite {sqlite:.1f} ms per step, Postgres {pg:.1f} ms per step ({pg / sqlite:.2f}×)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    with PostgresServer() as postgres, RedisServer() as redis:
        scale_out(args.items, [int(w) for w in args.workers.split(",")], args.repeat, postgres, redis)
        per_step(args.runs + 1, postgres)


if __name__ == "__main__":
    main()
