"""A cancel stops new LLM calls within one batch wherever they are made (a map inside a sub-playbook too); a
sub-playbook runs on its parent's clock."""

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


DATED_CHILD = """
name: dated_child
steps:
  - {id: stamp, tool: file.write, with: {path: child_date.txt, content: "${{ run.date }}"}}
outputs: {date: "${{ run.date }}"}
"""

DATED_PARENT = """
name: dated_parent
steps:
  - {id: sub, playbook: dated_child.yaml}
outputs: {parent: "${{ run.date }}", child: "${{ steps.sub.date }}"}
"""


def test_a_sub_playbook_keeps_its_parents_day_in_the_project_timezone(project_dir: Path) -> None:
    """On a server whose clock is UTC, the project's day (here UTC+14) is often already the next one: a
    sub-playbook's `run.date` is its parent's, not the machine's."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    toml = project_dir / "playbook.toml"
    toml.write_text('timezone = "Pacific/Kiritimati"\n' + toml.read_text(encoding="utf-8"), encoding="utf-8")
    write_playbook(project_dir, DATED_CHILD, "dated_child.yaml")
    outcome = run_playbook(write_playbook(project_dir, DATED_PARENT))
    assert outcome.status == "done", outcome.error
    store = SqliteStore(project_dir / ".playbook" / "state.db")
    try:
        run = store.get_run(outcome.run_id)
    finally:
        store.close()
    assert run is not None
    day = datetime.fromtimestamp(run["started_at"], ZoneInfo("Pacific/Kiritimati")).strftime("%Y-%m-%d")
    assert outcome.outputs == {"parent": day, "child": day}


def test_a_parent_failed_inside_its_sub_playbook_counts_the_tokens_spent_there(project_dir: Path,
                                                                              server: FakeLLMServer) -> None:
    server.add_rule("先总结", "一段总结")
    write_playbook(project_dir, """
name: child_fails
steps:
  - {id: s, llm: {prompt: 先总结}}
  - {id: read, tool: file.read, with: {path: 不存在的文件.txt}}
""", "child_fails.yaml")
    path = write_playbook(project_dir, "name: parent_fails\nsteps:\n  - {id: sub, playbook: child_fails.yaml}\n")
    outcome = run_playbook(path)
    assert outcome.status == "failed"
    store = SqliteStore(project_dir / ".playbook" / "state.db")
    parent, child = store.get_run(outcome.run_id), store.get_run(f"{outcome.run_id}.sub-1")
    assert parent is not None and child is not None and child["tokens_in"] > 0
    # the sub-playbook's call is on its parent's row (it used to be added only when the sub-playbook finished)
    assert (parent["tokens_in"], parent["tokens_out"], parent["cost"]) == \
        (child["tokens_in"], child["tokens_out"], child["cost"])
    assert outcome.tokens_in == child["tokens_in"]  # and in what the command prints
    store.close()
