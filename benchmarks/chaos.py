"""Chaos on a team server: a distributed map on two `playbook worker` processes (Celery on a throw-away Redis, state
in a throw-away Postgres, the fake LLM over HTTP at 0.5 s a call), and one fault per trial at a random moment of the
map: a worker killed (kill -9 of its process group), the run's coordinating worker killed, Redis restarted empty,
Postgres restarted (`pg_ctl -m immediate` stop then start), Postgres stopped for 20 s and for 90 s (longer than a
store waits for its database), and the coordinating worker frozen (SIGSTOP of its process group: alive, no
progress) for 60 s, then let go on.

    python benchmarks/chaos.py [--trials 5] [--seed 1] [--kinds worker,coordinator,redis,postgres,postgres_20s,...]

Per trial: `by itself` (the run finished with nobody's help), `after resume` (it ended failed and one
`playbook resume` finished it), `lost` (not finished, or not all 800 outputs), `stuck` (still running after 4
minutes), whether the run was ever shown `failed` on the way, and the answered calls asked again (a batch answered
more than a second before the fault, asked again after it: the journal should make that 0)."""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.config import load_project  # noqa: E402
from runner.store import open_store  # noqa: E402
from runner.testing import FakeLLMServer  # noqa: E402
from runner.testing.servers import PostgresServer, RedisServer, WorkerPool  # noqa: E402

ITEMS, BATCH = 800, 20
MAP = f"""
name: chaos
steps:
  - id: label
    map: "${{{{ range({ITEMS}) | list }}}}"
    batch: {BATCH}
    concurrency: 4
    llm: {{prompt: "标注第 ${{{{ item }}}} 条", output: {{tag: string}}}}
outputs: {{n: "${{{{ steps.label.output | length }}}}"}}
"""
KINDS = ("worker", "coordinator", "redis", "postgres", "postgres_20s", "postgres_90s", "frozen")


def cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runner", *args], cwd=folder, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"})


def run_row(folder: Path, run_id: str) -> dict[str, Any]:
    store = open_store(load_project(folder))
    try:
        return store.get_run(run_id) or {}
    finally:
        store.close()


def wait_end(folder: Path, run_id: str, seconds: float, seen: set[str]) -> dict[str, Any]:
    """The run once it is done or failed (for 10 s); as it is after `seconds` otherwise. Every status it showed on
    the way is added to `seen`."""
    deadline = time.monotonic() + seconds
    failed_since: float | None = None
    while True:
        try:
            run = run_row(folder, run_id)
        except Exception:  # the database is down during the fault
            run = {"status": "unknown"}
        status = run.get("status")
        seen.add(str(status))
        if status == "done" or time.monotonic() > deadline:
            return run
        if status == "failed":
            failed_since = failed_since or time.monotonic()
            if time.monotonic() - failed_since > 10:
                return run
        else:
            failed_since = None
        time.sleep(0.3)


def asked_again(server: FakeLLMServer, fault_at: float) -> int:
    first: dict[str, float] = {}
    again = 0
    for request in server.requests:
        if "标注第" not in request["prompt"] or request["status"] != 200:
            continue
        batch = request["prompt"].split("标注第 ")[1].split(" 条")[0]
        if batch in first and first[batch] + server.latency < fault_at - 1.0:
            again += 1
        first.setdefault(batch, request["time"])
    return again


def coordinator(workers: WorkerPool, folder: Path, run_id: str) -> str:
    pid = run_row(folder, run_id).get("pid")
    holders = [name for name in workers.processes if pid in workers.pids(name)]
    return holders[0] if holders else random.choice(list(workers.processes))


def trial(kind: str, rng: random.Random, postgres: PostgresServer, redis: RedisServer, db: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix=f"chaos-{kind}-"))
    with FakeLLMServer() as server:
        server.latency = 0.5
        store_url = postgres.new_database()
        (folder / "playbook.toml").write_text(
            server.toml() + f'\n[store]\nurl = "{store_url}"\n\n[queue]\nbroker = "{redis.url(db)}"\nmap_chunk = 200\n',
            encoding="utf-8")
        (folder / "pb.yaml").write_text(MAP, encoding="utf-8")
        env = {"FAKE_LLM_API_KEY": "chaos", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        workers = WorkerPool(folder, env=env)
        # as the README deploys a team server: the scheduler's tick re-queues a run whose worker is gone
        scheduler = subprocess.Popen([sys.executable, "-m", "runner", "scheduler"], cwd=folder,
                                     env={**os.environ, **env}, stdout=(folder / "scheduler.log").open("wb"),
                                     stderr=subprocess.STDOUT)
        try:
            for name in ("w1", "w2"):
                workers.start(name, concurrency=2)
            workers.wait_ready()
            assert cli(folder, "run", "pb.yaml", "--run-id", "c", "--detach").returncode == 0
            at = rng.randint(4, 30)  # of the 40 batches' requests
            deadline = time.monotonic() + 120
            while len(server.requests) < at and time.monotonic() < deadline:
                time.sleep(0.05)
            fault_at = time.time()
            if kind in ("worker", "coordinator"):
                name = coordinator(workers, folder, "c") if kind == "coordinator" else \
                    rng.choice([n for n in workers.processes if n != coordinator(workers, folder, "c")])
                workers.kill(name)
                workers.start(f"{name}b", concurrency=2)
            elif kind == "redis":
                redis.restart()
            elif kind == "frozen":
                frozen = workers.processes[coordinator(workers, folder, "c")].pid
                os.killpg(frozen, signal.SIGSTOP)
                time.sleep(60)
                os.killpg(frozen, signal.SIGCONT)
            else:
                postgres.stop()
                time.sleep({"postgres_20s": 20, "postgres_90s": 90}.get(kind, 0))
                postgres.start()
            seen: set[str] = set()
            run = wait_end(folder, "c", 240, seen)
            outcome = "by itself" if run.get("status") == "done" else run.get("status") or "unknown"
            if run.get("status") == "failed":
                cli(folder, "resume", "c")
                run = wait_end(folder, "c", 240, seen)
                outcome = "after resume" if run.get("status") == "done" else "lost"
            elif run.get("status") != "done":
                outcome = "stuck"
            if run.get("status") == "done" and run.get("outputs") != {"n": ITEMS}:
                outcome = "lost"
            return {"kind": kind, "at": at, "outcome": outcome, "again": asked_again(server, fault_at),
                    "shown_failed": "failed" in seen,
                    "seconds": round((run.get("ended_at") or time.time()) - fault_at, 1),  # the end as the store has it
                    "error": (run.get("error") or "")[:120]}
        finally:
            scheduler.kill()
            scheduler.wait()
            workers.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kinds", default=",".join(KINDS))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    results = []
    with PostgresServer() as postgres, RedisServer() as redis:
        db = 0
        for kind in args.kinds.split(","):
            for _ in range(args.trials):
                db = (db + 1) % 64
                result = trial(kind, rng, postgres, redis, db)
                results.append(result)
                print(f"{result['kind']:<13} fault at request {result['at']:>2}: {result['outcome']:<12} "
                      f"asked again {result['again']}  {result['seconds']:>6} s  "
                      f"{'shown failed ' if result['shown_failed'] else ''}{result['error']}", flush=True)
    print("\n| fault | trials | finished by itself | after `playbook resume` | lost | stuck | shown failed on the way "
          "| answered calls asked again | seconds from the fault to the end (median) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind in args.kinds.split(","):
        mine = [r for r in results if r["kind"] == kind]
        counts = Counter(r["outcome"] for r in mine)
        print(f"| {kind} | {len(mine)} | {counts['by itself']} | {counts['after resume']} | {counts['lost']} | "
              f"{counts['stuck']} | {sum(r['shown_failed'] for r in mine)} | {sum(r['again'] for r in mine)} | "
              f"{statistics.median(r['seconds'] for r in mine)} |")


if __name__ == "__main__":
    main()
