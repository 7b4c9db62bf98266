"""A step that needs the branches of a switch, a `when`, a goto or an error branch runs once, whichever branch ran;
it is skipped only when every path to it was (runner/engine/gates.py). Each through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.dsl.validate import load_and_validate
from runner.engine.compile import branches_of
from runner.testing import FakeLLMServer
from tests.conftest import cli, write_playbook


def run_json(project_dir: Path, run_id: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((project_dir / ".playbook" / "runs" / run_id / "run.json")
                                         .read_text(encoding="utf-8"))
    return data


def asked(server: FakeLLMServer, prompt: str) -> int:
    return sum(1 for r in server.requests if r["prompt"] == prompt)


SWITCH_JOIN = """
name: switch_join
inputs: {kind: {type: string, default: a}}
steps:
  - id: sw
    switch:
      cases: [{if: "${{ inputs.kind == 'a' }}", goto: a}]
      default: b
  - {id: a, llm: {prompt: 走A}}
  - {id: b, needs: [sw], llm: {prompt: 走B}}
  - id: join
    needs: [a, b]
    llm: {prompt: "合并 ${{ steps.a.status }} ${{ steps.b.status }}"}
outputs: {joined: "${{ steps.join.output }}", a: "${{ steps.a.status }}", b: "${{ steps.b.status }}"}
"""


@pytest.mark.parametrize(("kind", "ran", "skipped"), [("a", "a", "b"), ("b", "b", "a")])
def test_a_join_after_a_switch_runs_once_whichever_branch_ran(project_dir: Path, server: FakeLLMServer,
                                                             kind: str, ran: str, skipped: str) -> None:
    path = write_playbook(project_dir, SWITCH_JOIN)
    done = cli("run", str(path), "-i", f"kind={kind}", "--run-id", f"r{kind}", cwd=project_dir)
    assert done.returncode == 0, done.stderr
    assert asked(server, f"合并 {'done skipped' if kind == 'a' else 'skipped done'}") == 1
    assert asked(server, f"走{ran.upper()}") == 1 and asked(server, f"走{skipped.upper()}") == 0
    outputs = run_json(project_dir, f"r{kind}")["outputs"]
    assert outputs == {"joined": "ok", ran: "done", skipped: "skipped"}


def test_a_branch_may_goto_the_join_and_a_when_skip_does_not_stop_it(project_dir: Path,
                                                                     server: FakeLLMServer) -> None:
    path = write_playbook(project_dir, """
name: goto_join
inputs: {urgent: {type: boolean, default: false}}
steps:
  - id: sw
    switch:
      cases: [{if: "${{ inputs.urgent }}", goto: fast}]
      default: slow
  - {id: fast, llm: {prompt: 快速处理}, goto: join}
  - {id: slow, llm: {prompt: 慢慢处理}}
  - {id: polish, when: "${{ false }}", llm: {prompt: 润色}}
  - id: join
    needs: [fast, polish]
    llm: {prompt: "汇总 ${{ steps.fast.status }} ${{ steps.slow.status }} ${{ steps.polish.status }}"}
""")
    for urgent, expected in (("true", "汇总 done skipped skipped"), ("false", "汇总 skipped done skipped")):
        done = cli("run", str(path), "-i", f"urgent={urgent}", cwd=project_dir)
        assert done.returncode == 0, done.stderr
        assert asked(server, expected) == 1, [r["prompt"] for r in server.requests]
    assert asked(server, "润色") == 0


def test_an_error_branch_and_the_normal_branch_join(project_dir: Path, server: FakeLLMServer) -> None:
    (project_dir / "table.csv").write_text("id,text\n1,好\n", encoding="utf-8")
    path = write_playbook(project_dir, """
name: error_join
inputs: {table: {type: string}}
steps:
  - id: load
    tool: sheet.read
    with: {path: "${{ inputs.table }}"}
    on_error: {goto: explain}
  - {id: count, llm: {prompt: "数一数 ${{ steps.load.count }}"}, goto: report}
  - {id: explain, llm: {prompt: 解释为什么读不到}}
  - id: report
    needs: [count, explain]
    llm: {prompt: "报告 ${{ steps.count.status }} ${{ steps.explain.status }}"}
outputs: {report: "${{ steps.report.output }}"}
""")
    good = cli("run", str(path), "-i", "table=table.csv", cwd=project_dir)
    assert good.returncode == 0, good.stderr
    bad = cli("run", str(path), "-i", "table=missing.csv", cwd=project_dir)
    assert bad.returncode == 0, bad.stderr
    assert asked(server, "报告 done skipped") == 1 and asked(server, "报告 skipped done") == 1
    assert asked(server, "数一数 1") == 1 and asked(server, "解释为什么读不到") == 1


def test_a_join_waits_for_an_approval_loop_and_runs_once_after_it(project_dir: Path, server: FakeLLMServer) -> None:
    path = write_playbook(project_dir, """
name: loop_join
steps:
  - {id: side, needs: [], llm: {prompt: 旁支}}
  - {id: draft, needs: [], max_visits: 5, llm: {prompt: "草稿 ${{ approval.comment }}"}}
  - id: review
    approval: {title: 审核, show: "${{ steps.draft.output }}", on_reject: draft}
  - {id: publish, llm: {prompt: "发布 ${{ steps.review.output }}"}}
  - id: join
    needs: [publish, side]
    llm: {prompt: "收尾 ${{ steps.draft.visits }}"}
outputs: {visits: "${{ steps.draft.visits }}"}
""")
    first = cli("run", str(path), "--run-id", "loop", cwd=project_dir)
    assert first.returncode == 3 and "审核" in first.stdout, first.stderr  # 3: waiting for approval
    rejected = cli("reject", "loop", "--comment", "再具体些", cwd=project_dir)
    assert rejected.returncode == 3, rejected.stderr
    assert asked(server, "草稿 再具体些") == 1 and asked(server, "收尾 2") == 0  # waiting again, nothing past it
    approved = cli("approve", "loop", cwd=project_dir)
    assert approved.returncode == 0, approved.stderr
    assert asked(server, "发布 ok") == 1 and asked(server, "收尾 2") == 1 and asked(server, "旁支") == 1
    assert run_json(project_dir, "loop")["outputs"] == {"visits": 2}


def test_a_switch_inside_a_loop_joins_on_every_turn(project_dir: Path, server: FakeLLMServer) -> None:
    path = write_playbook(project_dir, """
name: loop_switch
steps:
  - {id: head, max_visits: 5, llm: {prompt: "第 ${{ steps.head.visits + 1 }} 轮"}}
  - id: sw
    switch:
      cases: [{if: "${{ steps.head.visits % 2 == 1 }}", goto: odd}]
      default: even
  - {id: odd, llm: {prompt: 奇数轮}}
  - {id: even, needs: [sw], llm: {prompt: 偶数轮}}
  - {id: join, needs: [odd, even], llm: {prompt: "合 ${{ steps.head.visits }}"}}
  - id: again
    switch:
      cases: [{if: "${{ steps.head.visits < 3 }}", goto: head}]
      default: end
outputs: {turns: "${{ steps.join.visits }}"}
""")
    done = cli("run", str(path), "--run-id", "turns", cwd=project_dir)
    assert done.returncode == 0, done.stderr
    assert [asked(server, f"合 {n}") for n in (1, 2, 3)] == [1, 1, 1]
    assert asked(server, "奇数轮") == 2 and asked(server, "偶数轮") == 1
    assert run_json(project_dir, "turns")["outputs"] == {"turns": 3}


def test_branches_of_several_steps_join_whether_run_as_subgraphs_or_not(project_dir: Path,
                                                                        server: FakeLLMServer) -> None:
    path = write_playbook(project_dir, """
name: nested
inputs: {kind: {type: string, default: a}}
steps:
  - {id: side, needs: [], llm: {prompt: 旁支}}
  - id: sw
    needs: []
    switch:
      cases: [{if: "${{ inputs.kind == 'a' }}", goto: a1}]
      default: b1
  - {id: a1, llm: {prompt: A1}}
  - {id: a2, needs: [a1], llm: {prompt: A2}}
  - {id: a3, needs: [a1], llm: {prompt: A3}}
  - {id: a4, needs: [a2, a3], llm: {prompt: A4}}
  - {id: b1, needs: [sw], llm: {prompt: B1}}
  - {id: b2, llm: {prompt: B2}}
  - {id: join, needs: [a4, b2], llm: {prompt: "合并 ${{ steps.a4.status }} ${{ steps.b2.status }}"}}
  - {id: final, needs: [join, side], llm: {prompt: 收尾}}
outputs: {final: "${{ steps.final.output }}"}
""")
    groups = [(b.entry, b.exit) for b in branches_of(load_and_validate(path))]
    assert ("a1", "a4") in groups and ("b1", "b2") in groups  # the branches run as subgraphs
    for kind in ("a", "b"):
        done = cli("run", str(path), "-i", f"kind={kind}", cwd=project_dir)
        assert done.returncode == 0, done.stderr
    assert asked(server, "合并 done skipped") == 1 and asked(server, "合并 skipped done") == 1
    assert asked(server, "收尾") == 2 and asked(server, "A4") == 1 and asked(server, "B2") == 1


def test_every_step_after_goto_end_reads_as_skipped(project_dir: Path, server: FakeLLMServer) -> None:
    path = write_playbook(project_dir, """
name: early_end
inputs: {stop: {type: boolean, default: true}}
steps:
  - id: guard
    switch:
      cases: [{if: "${{ inputs.stop }}", goto: end}]
  - {id: work, llm: {prompt: 干活}}
  - {id: wrap, llm: {prompt: 收尾}}
outputs: {work: "${{ steps.work.status }}", wrap: "${{ steps.wrap.status }}"}
""")
    done = cli("run", str(path), "--run-id", "stopped", cwd=project_dir)
    assert done.returncode == 0, done.stderr
    assert run_json(project_dir, "stopped")["outputs"] == {"work": "skipped", "wrap": "skipped"}
    assert not server.requests


def test_two_approvals_side_by_side_are_decided_one_after_the_other(project_dir: Path, server: FakeLLMServer) -> None:
    """Found by the generative test: two approvals waiting at once made `approve` fail with LangGraph's 'multiple
    pending interrupts' error, then with a concurrent update of the decision."""
    path = write_playbook(project_dir, """
name: two_reviews
steps:
  - {id: title, needs: [], llm: {prompt: 写标题}}
  - {id: body, needs: [], llm: {prompt: 写正文}}
  - {id: check_title, needs: [title], approval: {title: 审标题, show: "${{ steps.title.output }}"}}
  - {id: check_body, needs: [body], approval: {title: 审正文, show: "${{ steps.body.output }}"}}
  - {id: publish, needs: [check_title, check_body], llm: {prompt: "发布 ${{ approval.comment }}"}}
""")
    first = cli("run", str(path), "--run-id", "two", cwd=project_dir)
    assert first.returncode == 3, first.stderr
    second = cli("approve", "two", "--comment", "一", cwd=project_dir)
    assert second.returncode == 3 and "等待审核" in second.stdout, second.stderr  # the other one still waits
    third = cli("approve", "two", "--comment", "二", cwd=project_dir)
    assert third.returncode == 0, third.stderr
    assert asked(server, "发布 二") == 1 and asked(server, "写标题") == 1 and asked(server, "写正文") == 1


def test_a_loop_entered_by_a_route_comes_round_again(project_dir: Path, server: FakeLLMServer) -> None:
    """Found by the generative test (seed 247): an approval reached by a switch and by its own on_reject loop waited
    for the switch's link a second time, so the run ended 'done' without asking again."""
    path = write_playbook(project_dir, """
name: routed_loop
steps:
  - id: sw
    switch: {cases: [{if: "${{ true }}", goto: review}]}
  - {id: prepare, llm: {prompt: 准备}}
  - {id: draft, max_visits: 3, llm: {prompt: "草稿 ${{ approval.comment }}"}}
  - {id: review, needs: [draft], approval: {title: 审核, show: "${{ steps.draft.output }}", on_reject: draft}}
  - {id: publish, llm: {prompt: "发布 ${{ steps.draft.visits }}"}}
""")
    assert cli("run", str(path), "--run-id", "rl", cwd=project_dir).returncode == 3
    again = cli("reject", "rl", "--comment", "重写", cwd=project_dir)
    assert again.returncode == 3 and "等待审核" in again.stdout, again.stderr  # asked again after the new draft
    assert cli("approve", "rl", cwd=project_dir).returncode == 0
    assert asked(server, "草稿 重写") == 1 and asked(server, "发布 1") == 1 and asked(server, "准备") == 0


def test_a_step_in_a_loop_may_also_need_a_step_outside_it(project_dir: Path, server: FakeLLMServer) -> None:
    path = write_playbook(project_dir, """
name: loop_with_outside_need
steps:
  - {id: facts, llm: {prompt: 资料}}
  - {id: draft, needs: [], max_visits: 5, llm: {prompt: "第 ${{ steps.draft.visits + 1 }} 稿"}}
  - {id: polish, needs: [draft, facts], llm: {prompt: "润色 ${{ steps.draft.visits }}"}}
  - id: again
    switch: {cases: [{if: "${{ steps.draft.visits < 3 }}", goto: draft}], default: end}
""")
    done = cli("run", str(path), cwd=project_dir)
    assert done.returncode == 0, done.stderr
    assert [asked(server, f"润色 {n}") for n in (1, 2, 3)] == [1, 1, 1] and asked(server, "资料") == 1


def test_a_step_needing_an_error_branch_source_and_a_step_before_it_runs(project_dir: Path,
                                                                        server: FakeLLMServer) -> None:
    """Found by the generative benchmark (seed 3850): `report` needs `parse` (after an error branch's source) and
    `start` (before it); the branch planner took `start` as implied by `parse` and ran `parse → report` as one
    subgraph, skipped whole when the error branch was taken."""
    path = write_playbook(project_dir, """
name: implied
steps:
  - {id: start, llm: {prompt: 开始}}
  - {id: load, tool: file.read, with: {path: missing.md}, on_error: {goto: fallback}}
  - {id: parse, llm: {prompt: 解析}}
  - {id: report, needs: [parse, start], llm: {prompt: "报告 ${{ steps.parse.status }}"}}
  - {id: fallback, llm: {prompt: 兜底}, needs: []}
""")
    assert ("parse", "report") not in [(b.entry, b.exit) for b in branches_of(load_and_validate(path))]
    done = cli("run", str(path), cwd=project_dir)
    assert done.returncode == 0, done.stderr
    assert asked(server, "报告 skipped") == 1 and asked(server, "解析") == 0 and asked(server, "兜底") == 1
