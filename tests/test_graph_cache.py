"""A playbook's graph is built once per source in a process (runner/engine/compile.py run_graph) and shared by
every run of it: its nodes find their run in `current_run()`, never in themselves. Runs side by side, a
sub-playbook inside a map and an approval resumed must each see only their own run."""

from __future__ import annotations

import asyncio
from pathlib import Path

from conftest import resume, run_playbook, write_playbook

from runner.assembly import assemble
from runner.config import load_project
from runner.dsl.validate import load_and_validate
from runner.engine.execute import RunOutcome
from runner.testing import FakeLLMServer
from runner.testing.fake_llm import Rule

ECHO = """
name: echo
inputs: {word: {type: string}}
steps:
  - {id: ask, llm: {prompt: "复述 ${{ inputs.word }}"}}
  - {id: wrap, template: "${{ inputs.word }}:${{ steps.ask.output }}"}
outputs: {text: "${{ steps.wrap.output }}"}
"""


def test_runs_side_by_side_share_one_graph_and_keep_their_own_inputs_and_records(
        project_dir: Path, server: FakeLLMServer) -> None:
    server.rules.insert(0, Rule("复述", lambda body: body["messages"][-1]["content"].removeprefix("复述 ")))
    path = write_playbook(project_dir, ECHO)
    playbook = load_and_validate(path)
    runner = assemble(load_project())

    async def four() -> list[RunOutcome]:
        return list(await asyncio.gather(*(runner.start(playbook, {"word": w}) for w in ("甲", "乙", "丙", "丁"))))

    try:
        outcomes = asyncio.run(four())
        graph = playbook.graphs["run"]
        again = asyncio.run(runner.start(playbook, {"word": "戊"}))
        assert playbook.graphs["run"] is graph  # not built again
        rows = {o.run_id: runner.store.step_rows(o.run_id) for o in outcomes}
    finally:
        runner.close()
    assert [o.outputs["text"] for o in outcomes] == ["甲:甲", "乙:乙", "丙:丙", "丁:丁"]
    assert again.outputs["text"] == "戊:戊"
    for outcome in outcomes:  # each run's steps table holds its own two steps, done
        assert [(r["step"], r["status"]) for r in rows[outcome.run_id]] == [("ask", "done"), ("wrap", "done")]


def test_a_map_of_sub_playbook_runs_and_a_resumed_approval_use_the_shared_graphs(
        project_dir: Path, server: FakeLLMServer) -> None:
    write_playbook(project_dir, ECHO, "echo.yaml")
    path = write_playbook(project_dir, """
name: parent
steps:
  - id: each
    map: [春, 夏, 秋]
    playbook: echo.yaml
    with: {word: "${{ item }}"}
  - id: check
    approval: {title: 看一下, show: "${{ steps.each.output }}"}
  - {id: after, template: "${{ steps.each.output | map(attribute='text') | join(',') }}"}
outputs: {joined: "${{ steps.after.output }}"}
""")
    waiting = run_playbook(path)
    assert waiting.status == "waiting", waiting.error
    playbook = load_and_validate(path)
    assert "run" in playbook.graphs and "run" in playbook.children["each"].graphs
    done = resume(waiting.run_id, decision={"action": "approve"})
    assert done.status == "done", done.error
    texts = done.outputs["joined"].split(",")
    assert [t.split(":")[0] for t in texts] == ["春", "夏", "秋"]  # each child run saw its own item
