"""Dataflow across branches: a step starts when the steps it needs are done, whatever other branches
are doing (runner/engine/branches.py). Checked against the fake server's request times."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from runner.dsl.validate import load_and_validate
from runner.engine.branches import plan_branches
from runner.engine.compile import branches_of, compile_graph
from runner.store import SqliteStore
from runner.testing import FakeLLMServer
from tests.conftest import HeldUntilAsked, resume, run_playbook, write_playbook, write_summary_child


def sent(server: FakeLLMServer, text: str) -> float:
    return next(r["time"] for r in server.requests if text in r["prompt"])


def test_three_quick_steps_finish_long_before_one_slow_step(project_dir: Path, server: FakeLLMServer) -> None:
    server.latency = 0.2
    slow = HeldUntilAsked(server, "慢步骤", "快三")
    path = write_playbook(project_dir, """
name: branches
steps:
  - {id: start, llm: {prompt: 开始}}
  - {id: slow, needs: [start], llm: {prompt: 慢步骤}}
  - {id: quick1, needs: [start], llm: {prompt: 快一}}
  - {id: quick2, llm: {prompt: "快二 ${{ steps.quick1.output }}"}}
  - {id: quick3, llm: {prompt: "快三 ${{ steps.quick2.output }}"}}
  - {id: join, needs: [slow, quick3], llm: {prompt: "合并 ${{ steps.slow.output }} ${{ steps.quick3.output }}"}}
outputs: {joined: "${{ steps.join.output }}"}
""")
    outcome = run_playbook(path)
    assert outcome.status == "done", outcome.error
    assert slow.asked_while_held  # quick3 was asked while the slow step waited for its reply: its branch did not wait
    assert sent(server, "合并") >= slow.released_at  # the join waited for both
    assert [r["prompt"] for r in server.requests].count("快一") == 1


def test_the_same_shape_without_branches_waits_each_superstep(project_dir: Path) -> None:
    """The mechanism the test above relies on: the quick steps run as one branch node; the flat graph
    (LangGraph's superstep barrier would make each quick step wait for the slow one) is only drawn."""
    path = write_playbook(project_dir, """
name: flat
steps:
  - {id: slow, needs: [], llm: {prompt: 慢步骤}}
  - {id: quick1, needs: [], llm: {prompt: 快一}}
  - {id: quick2, llm: {prompt: 快二}}
  - {id: join, needs: [slow, quick2], llm: {prompt: 合并}}
""")
    playbook = load_and_validate(path)
    assert [(b.entry, b.exit, b.steps) for b in branches_of(playbook)] == [
        ("quick1", "quick2", ("quick1", "quick2"))]

    async def node(state: dict[str, Any]) -> dict[str, Any]:
        return {}

    nodes = set(compile_graph(playbook, lambda step: node).get_graph().nodes)
    assert "quick1…quick2" in nodes and "quick1" not in nodes
    flat = set(compile_graph(playbook, lambda step: node, dataflow=False).get_graph().nodes)
    assert {"slow", "quick1", "quick2", "join"} <= flat


def test_nested_branches_and_what_stays_in_the_outer_graph(project_dir: Path) -> None:
    path = write_playbook(project_dir, """
name: nested
steps:
  - {id: a, llm: {prompt: a}}
  - {id: b1, needs: [a], llm: {prompt: b1}}
  - {id: c1, needs: [b1], llm: {prompt: c1}}
  - {id: c2, needs: [b1], llm: {prompt: c2}}
  - {id: c3, needs: [c2], llm: {prompt: c3}}
  - {id: b2, needs: [c1, c3], llm: {prompt: b2}}
  - {id: x, needs: [a], llm: {prompt: x}}
  - {id: check, needs: [x], switch: {cases: [{if: "${{ false }}", goto: x}], default: end}, max_visits: 3}
  - {id: z, needs: [b2], llm: {prompt: z}}
""")
    playbook = load_and_validate(path)
    plain = {s.id for s in playbook.spec.steps if s.switch is None}
    (outer,) = plan_branches(playbook.topology, plain)
    # b1 … z runs beside x; inside it, c2 → c3 runs beside c1; x (a route target) and the switch stay outside
    assert (outer.entry, outer.exit) == ("b1", "z")
    assert [(b.entry, b.exit) for b in outer.inner] == [("c2", "c3")]


def test_feedback_digest_cluster_notes_does_not_wait_for_label() -> None:
    playbook = load_and_validate(Path(__file__).parents[1] / "playbooks" / "feedback_digest.yaml")
    # clusters → cluster_notes → faq_grounds (the knowledge base's passages for each question) as one branch
    assert ("clusters", "faq_grounds") in [(b.entry, b.exit) for b in branches_of(playbook)]
    assert "label" not in playbook.topology.deps["cluster_notes"]
    assert playbook.topology.deps["replies"] == ["review", "reply_grounds"]  # replies runs beside good_cases


def test_a_branch_entry_reached_by_a_route_and_resume_after_approval(project_dir: Path,
                                                                     server: FakeLLMServer) -> None:
    """on_reject re-enters a branch at its entry; approving after a pause continues through branches."""
    server.add_rule("审核意见", "改过的稿")
    path = write_playbook(project_dir, """
name: routed
steps:
  - {id: side, needs: [], llm: {prompt: 旁路}}
  - {id: draft, needs: [side], max_visits: 3,
     llm: {prompt: "初稿{% if approval.comment %} 审核意见 ${{ approval.comment }}{% endif %}"}}
  - {id: polish, llm: {prompt: "润色 ${{ steps.draft.output }}"}}
  - {id: review, approval: {title: 审稿, show: "${{ steps.polish.output }}", on_reject: draft}}
  - {id: publish, llm: {prompt: "发布 ${{ steps.review.output }}"}}
  - {id: other, needs: [side], llm: {prompt: 另一支}}
  - {id: after, needs: [publish, other], llm: {prompt: "汇总 ${{ steps.other.output }}"}}
outputs: {final: "${{ steps.after.output }}", visits: "${{ steps.draft.visits }}"}
""")
    assert [(b.entry, b.exit) for b in branches_of(load_and_validate(path))] == [("draft", "polish")]
    first = run_playbook(path)
    assert first.status == "waiting", first.error
    second = resume(first.run_id, decision={"action": "reject", "comment": "太长"})
    assert second.status == "waiting", second.error
    assert any("审核意见 太长" in r["prompt"] for r in server.requests)
    third = resume(first.run_id, decision={"action": "approve"})
    assert third.status == "done", third.error
    assert third.outputs["visits"] == 2
    prompts = [r["prompt"] for r in server.requests]
    assert prompts.count("旁路") == 1 and prompts.count("另一支") == 1


def test_every_approval_field_validate_allows_reads_before_and_after_an_approval(project_dir: Path,
                                                                                server: FakeLLMServer) -> None:
    """`approval.step` passed validate and then failed the run ("no field 'step'") when no approval had been decided
    yet, and `approval.edits` after one: the context now has every field validate allows."""
    from runner.dsl.references import APPROVAL_FIELDS

    reads = " ".join(f"{name}=${{{{ approval.{name} }}}}" for name in sorted(APPROVAL_FIELDS))
    path = write_playbook(project_dir, f"""
name: fields
steps:
  - {{id: before, template: "{reads}"}}
  - {{id: review, approval: {{title: 审稿, show: 草稿, editable: []}}}}
  - {{id: after, template: "{reads}"}}
outputs: {{before: "${{{{ steps.before.output }}}}", after: "${{{{ steps.after.output }}}}"}}
""")
    first = run_playbook(path)
    assert first.status == "waiting", first.error
    done = resume(first.run_id, decision={"action": "approve", "by": "小王", "comment": "好"})
    assert done.status == "done", done.error
    assert "step=None" in done.outputs["before"] and "action=None" in done.outputs["before"]
    assert "step=review" in done.outputs["after"] and "by=小王" in done.outputs["after"]


def test_a_loop_step_joining_a_step_outside_the_loop_runs_on_every_turn(project_dir: Path,
                                                                         server: FakeLLMServer) -> None:
    """It used to end 'done' without running the steps after the join (the join waited for a step that does not
    run again), and then was refused by validate; now the outside step's link holds for every turn."""
    path = write_playbook(project_dir, """
name: stuck
steps:
  - {id: side, needs: [], llm: {prompt: 旁路}}
  - {id: draft, needs: [], max_visits: 3, llm: {prompt: 初稿}}
  - {id: polish, llm: {prompt: "润色 ${{ steps.draft.visits }}"}}
  - id: review
    needs: [polish, side]
    approval: {title: 审稿, show: "${{ steps.polish.output }}", on_reject: draft}
  - {id: after, llm: {prompt: "发布 ${{ steps.review.output }}"}}
""")
    first = run_playbook(path)
    assert first.status == "waiting", first.error
    second = resume(first.run_id, decision={"action": "reject", "comment": "再改"})
    assert second.status == "waiting" and second.pending and second.pending["step"] == "review", second.error
    third = resume(first.run_id, decision={"action": "approve"})
    assert third.status == "done", third.error
    prompts = [r["prompt"] for r in server.requests]
    assert prompts.count("旁路") == 1 and prompts.count("润色 2") == 1 and prompts.count("发布 ok") == 1


def test_a_sub_playbook_inside_a_branch_and_a_cancel_that_reaches_a_branch(project_dir: Path,
                                                                            server: FakeLLMServer) -> None:
    server.add_rule("总结", "子流程的总结")
    slow = HeldUntilAsked(server, "慢步骤", "接着 子流程的总结")
    write_summary_child(project_dir)
    path = write_playbook(project_dir, """
name: parent
steps:
  - {id: slow, needs: [], llm: {prompt: 慢步骤}}
  - {id: sub, needs: [], playbook: child.yaml, with: {topic: 双十一}}
  - {id: after_sub, llm: {prompt: "接着 ${{ steps.sub.summary }}"}}
  - {id: join, needs: [slow, after_sub], llm: {prompt: 合并}}
outputs: {summary: "${{ steps.sub.summary }}", next: "${{ steps.after_sub.output }}"}
""")
    assert [(b.entry, b.exit) for b in branches_of(load_and_validate(path))] == [("sub", "after_sub")]
    outcome = run_playbook(path)
    assert outcome.status == "done", outcome.error
    assert outcome.outputs["summary"] == "子流程的总结"
    assert slow.asked_while_held  # the step after the sub-playbook did not wait for the slow step

    # a cancel asked while the branch's steps run stops the run as cancelled, like anywhere else
    server.requests.clear()
    store = SqliteStore(project_dir / ".playbook" / "state.db")
    server.latency = 0.5

    def cancel_soon() -> None:
        while not server.requests:
            time.sleep(0.05)
        store.update_run("cancel-me", cancel_requested=1)

    canceller = threading.Thread(target=cancel_soon)
    canceller.start()
    cancelled = run_playbook(path.parent / "pb.yaml", run_id="cancel-me")
    canceller.join()
    store.close()
    assert cancelled.status == "cancelled", cancelled.error
