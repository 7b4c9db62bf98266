"""What the team-server tests share: a project on a throw-away Postgres and Redis with `playbook worker` processes
(the `team` fixture in tests/conftest.py), the large map they run, and how to read what the fake server was asked."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.config import load_project
from runner.store import open_store
from runner.testing import FakeLLMServer
from runner.testing.servers import WorkerPool

MAP = """
name: bigmap
inputs: {n: {type: integer, default: 2000}}
steps:
  - id: label
    map: "${{ range(inputs.n) | list }}"
    batch: 20
    concurrency: 4
    llm: {prompt: "标注第 ${{ item }} 条", output: {tag: string}}
  - id: save
    tool: sheet.write
    with: {path: labels.xlsx, rows: "${{ steps.label.items }}", columns: [item, tag]}
outputs: {n: "${{ steps.label.output | length }}"}
"""


@dataclass
class Team:
    folder: Path
    workers: WorkerPool
    store_url: str
    broker: str

    def run(self, run_id: str) -> dict[str, Any]:
        store = open_store(load_project(self.folder))
        try:
            run = store.get_run(run_id)
        finally:
            store.close()
        assert run is not None, run_id
        return run

    def wait(self, run_id: str, status: str = "done", timeout: float = 240) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (run := self.run(run_id))["status"] != status:
            assert run["status"] not in {"done", "failed", "cancelled"} - {status}, run["error"]
            if time.monotonic() > deadline:
                logs = "\n".join(p.read_text(errors="replace")[-1500:] for p in self.folder.glob("worker-*.log"))
                raise AssertionError(f"{run_id} stayed {run['status']}:\n{logs}")
            time.sleep(0.2)
        return run

    def events(self, run_id: str, kind: str) -> list[dict[str, Any]]:
        path = self.folder / ".playbook" / "runs" / run_id / "events.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        return [e for line in lines if (e := json.loads(line)).get("event") == kind]


def batches_asked(server: FakeLLMServer) -> Counter[str]:
    """How often each batch of the map was asked for (by its first item)."""
    return Counter(r["prompt"].split("标注第 ")[1].split(" 条")[0] for r in server.requests
                   if "标注第" in r["prompt"] and r["status"] == 200)


def asked_again(server: FakeLLMServer, killed_at: float) -> list[str]:
    """Batches asked twice whose first answer had been sent a second before the kill (and so was journaled): a
    batch whose first request was still in flight when its worker died is rightly asked again."""
    first: dict[str, float] = {}
    again = []
    for request in server.requests:
        if "标注第" not in request["prompt"]:
            continue
        batch = request["prompt"].split("标注第 ")[1].split(" 条")[0]
        if batch in first and first[batch] + server.latency < killed_at - 1.0:  # 1 s: a loaded machine's lag
            again.append(batch)
        first.setdefault(batch, request["time"])
    return again
