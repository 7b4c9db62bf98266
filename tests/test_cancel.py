"""A cancel stops new LLM calls within one batch wherever they are made: in a map inside a sub-playbook too."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from runner.store.sqlite import SqliteStore
from runner.testing import FakeLLMServer
from tests.conftest import run_playbook, write_playbook

CHILD = """
name: child_map
inputs: {n: {type: integer, default: 200}}
steps:
  - id: label
    map: "${{ range(inputs.n) | list }}"
    concurrency: 2
    llm: {prompt: "标第 ${{ item }} 条"}
outputs: {n: "${{ steps.label.output | length }}"}
"""

PARENT = """
name: parent_of_map
steps:
  - {id: sub, playbook: child_map.yaml}
  - {id: after, llm: {prompt: 之后}}
"""


def test_a_cancel_stops_the_map_of_a_sub_playbook_within_a_batch(project_dir: Path, server: FakeLLMServer) -> None:
    write_playbook(project_dir, CHILD, "child_map.yaml")
    path = write_playbook(project_dir, PARENT)
    server.latency = 0.1
    asked: list[int] = []

    def cancel_after_some_calls() -> None:
        while len(server.requests) < 6:
            time.sleep(0.02)
        store = SqliteStore(project_dir / ".playbook" / "state.db")
        try:
            store.update_run("stop-me", cancel_requested=1)
        finally:
            store.close()
        asked.append(len(server.requests))

    canceller = threading.Thread(target=cancel_after_some_calls)
    canceller.start()
    outcome = run_playbook(path, run_id="stop-me")
    canceller.join()
    assert outcome.status == "cancelled", outcome.error
    prompts = [r["prompt"] for r in server.requests]
    assert "之后" not in prompts
    # at most the calls already in flight (concurrency 2) and one the check had just let through finish
    assert len(prompts) - asked[0] <= 3, (asked, len(prompts))
