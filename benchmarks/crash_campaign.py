"""Crash campaign: random kill -9 during `playbook run` and `playbook approve` of feedback_digest against the
fake server; after each kill the run is resumed (or approved) until it is done.

    python benchmarks/crash_campaign.py --trials 20 [--seed 1] [--limit 300]

Checks per trial: the run finishes; every comment is in the workbook's 标注 sheet exactly once and all four
sheets are there; LLM requests beyond a clean run's are at most what was in flight at the kills (a finished,
journaled request is never sent again). Prints one line per trial and a summary."""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import openpyxl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.testing import FakeLLMServer  # noqa: E402

SHEETS = ["标注", "聚类", "回复草稿", "用户需求"]


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "runner", *args]


def status(folder: Path, run_id: str) -> str:
    database = folder / ".playbook" / "state.db"
    if not database.exists():
        return "none"  # killed before the run was created
    with sqlite3.connect(database) as db:
        row = db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
    return row[0] if row else "none"


def attempt(folder: Path, args: list[str], kill_after: float | None) -> str:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "FAKE_LLM_API_KEY": "x"}
    process = subprocess.Popen(command(*args), cwd=folder, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    if kill_after is not None:
        try:
            process.wait(timeout=kill_after)
            return "finished before the kill"
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            return "killed"
    process.wait(timeout=600)
    return f"exit {process.returncode}"


def trial(folder: Path, server: FakeLLMServer, rng: random.Random, run_id: str, limit: int) -> dict[str, object]:
    before = len(server.requests)
    run = ["run", str(ROOT / "playbooks" / "feedback_digest.yaml"), "-i",
           f"comments={ROOT / 'examples' / 'reviews_zh.csv'}", "-i", f"limit={limit}", "--run-id", run_id]
    kills = 0
    kills += attempt(folder, run, rng.uniform(0.5, 4.0)) == "killed"
    for _ in range(20):
        state = status(folder, run_id)
        if state == "done":
            break
        kill = rng.uniform(0.5, 3.0) if rng.random() < 0.5 else None
        args = ["approve", run_id] if state == "waiting" else run if state == "none" else ["resume", run_id]
        kills += attempt(folder, args, kill) == "killed"
    book = folder / ".playbook" / "runs" / run_id / "feedback_labelled.xlsx"
    workbook = openpyxl.load_workbook(book, read_only=True)
    labelled = list(workbook["标注"].iter_rows(values_only=True))
    header = list(labelled[0])
    ids = Counter(row[header.index("id")] for row in labelled[1:])
    result = {"run": run_id, "status": status(folder, run_id), "kills": kills,
              "sheets_ok": workbook.sheetnames == SHEETS, "rows": sum(ids.values()),
              "duplicated_rows": sum(c - 1 for c in ids.values() if c > 1),
              "requests": len(server.requests) - before}
    workbook.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--limit", type=int, default=300)
    options = parser.parse_args()
    rng = random.Random(options.seed)
    with tempfile.TemporaryDirectory() as tmp, FakeLLMServer(latency=0.15) as server:
        def project(name: str) -> Path:  # a fresh folder per trial: no reply cache shared between trials
            folder = Path(tmp) / name
            folder.mkdir()
            (folder / "playbook.toml").write_text(server.toml(), encoding="utf-8")
            return folder

        start = len(server.requests)
        clean = project("clean")
        attempt(clean, ["run", str(ROOT / "playbooks" / "feedback_digest.yaml"), "-i",
                        f"comments={ROOT / 'examples' / 'reviews_zh.csv'}", "-i", f"limit={options.limit}",
                        "--run-id", "clean"], None)
        attempt(clean, ["approve", "clean"], None)
        baseline = len(server.requests) - start
        results = []
        for n in range(options.trials):
            started = time.monotonic()
            result = trial(project(f"t{n:02d}"), server, rng, f"t{n:02d}", options.limit)
            result["extra_requests"] = int(str(result["requests"])) - baseline
            result["seconds"] = round(time.monotonic() - started, 1)
            results.append(result)
            print(json.dumps(result, ensure_ascii=False), flush=True)
        done = sum(r["status"] == "done" for r in results)
        kills = sum(int(str(r["kills"])) for r in results)
        extra = [int(str(r["extra_requests"])) for r in results]
        print(f"trials {len(results)}, finished {done}, kills {kills}, all sheets present "
              f"{sum(bool(r['sheets_ok']) for r in results)}, duplicated rows "
              f"{sum(int(str(r['duplicated_rows'])) for r in results)}, clean run {baseline} requests, "
              f"requests beyond it per trial: max {max(extra)}, total {sum(extra)}")


if __name__ == "__main__":
    main()
