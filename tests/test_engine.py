"""Graph semantics against the fake server: parallel needs, switch/goto loops, map re-alignment,
approvals with on_reject and edits, cost limit, cancel, cache, sub-playbooks, `when`."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from runner.config import load_project
from runner.engine.decisions import build_decision, timeout_decision
from runner.engine.execute import Runner
from runner.errors import PlaybookError
from runner.store import SqliteStore
from runner.testing import FakeLLMServer
from tests.conftest import HeldUntilAsked, resume, run_playbook, write_playbook, write_summary_child


def test_needs_runs_independent_steps_in_parallel_and_joins(project_dir: Path,
                                                             server: FakeLLMServer) -> None:
    title = HeldUntilAsked(server, "写标题", "写正文", reply="标题A", awaited_reply="正文B")
    path = write_playbook(project_dir, """
name: parallel
steps:
  - {id: title, needs: [], llm: {prompt: 写标题}}
  - {id: body, needs: [], llm: {prompt: 写正文}}
  - id: join
    needs: [title, body]
    llm: {prompt: "合并 ${{ steps.title.output }} + ${{ steps.body.output }}"}
outputs: {joined: "${{ steps.title.output }}|${{ steps.body.output }}"}
""")
    outcome = run_playbook(path)
    assert outcome.status == "done" and outcome.outputs == {"joined": "标题A|正文B"}
    assert title.asked_while_held  # the body was asked while the title's reply was still held back
    assert server.requests[2]["prompt"] == "合并 标题A + 正文B"


def test_switch_loop_runs_until_condition_and_max_visits_stops_runaway(project_dir: Path) -> None:
    path = write_playbook(project_dir, """
name: loop
steps:
  - id: draft
    max_visits: 5
    llm: {prompt: "第 ${{ (steps.draft.visits if steps.draft is defined else 0) + 1 }} 稿"}
  - id: check
    switch:
      cases: [{if: "${{ steps.draft.visits < 3 }}", goto: draft}]
      default: end
outputs: {visits: "${{ steps.draft.visits }}"}
""")
    assert run_playbook(path).outputs == {"visits": 3}
    runaway = write_playbook(project_dir, """
name: runaway
steps:
  - {id: draft, max_visits: 4, llm: {prompt: 再写}}
  - id: check
    switch: {cases: [{if: "${{ true }}", goto: draft}]}
""", "runaway.yaml")
    outcome = run_playbook(runaway)
    assert outcome.status == "failed"
    assert "步骤 'draft'：访问超过了 max_visits=4 次" in (outcome.error or "")


def _batch_reply(drop_last: bool) -> Any:
    def reply(body: dict[str, Any]) -> str:
        prompt = body["messages"][-1]["content"]
        indexes = [int(i) for i in re.findall(r"### 第 (\d+) 条", prompt)]
        if drop_last and len(indexes) > 1:
            indexes = [*indexes[:-1], 999]  # one missing, one extra
        items = [{"index": i, "topic": f"t{i}"} for i in reversed(indexes)]
        return json.dumps({"items": items})

    return reply


def test_map_batches_realign_items_and_reask_missing_ones(project_dir: Path, server: FakeLLMServer) -> None:
    server.add_rule(r"共有 [2-9]\d* 条|共有 1\d+ 条", _batch_reply(drop_last=True))
    server.add_rule(r"共有 1 条", _batch_reply(drop_last=False))
    path = write_playbook(project_dir, """
name: mapper
inputs: {n: {type: integer}}
steps:
  - id: label
    map: "${{ range(inputs.n) | list }}"
    batch: 7
    concurrency: 3
    llm: {prompt: "编号 ${{ item }}", output: {topic: string}}
outputs: {topics: "${{ steps.label.output | map(attribute='topic') | list }}"}
""")
    outcome = run_playbook(path, {"n": 30})
    assert outcome.status == "done", outcome.error
    assert outcome.outputs["topics"] == [f"t{i}" for i in range(30)]
    assert len(server.prompts("共有 1 条")) == 5  # the one dropped item of each of the 5 batches


def test_reject_loops_back_with_comment_then_edit_is_validated_and_recorded(project_dir: Path,
                                                                             server: FakeLLMServer) -> None:
    server.add_rule("意见：更具体", {"title": "第二稿标题", "points": 3})
    server.add_rule("写方案", {"title": "第一稿标题", "points": 1})
    path = write_playbook(project_dir, """
name: review_loop
steps:
  - id: plan
    llm:
      prompt: "写方案{% if approval.comment %}。意见：${{ approval.comment }}{% endif %}"
      output: {title: string, points: integer}
  - id: review
    approval: {title: 审核方案, show: "${{ steps.plan.output }}", editable: [title], on_reject: plan}
outputs: {title: "${{ steps.review.output.title }}", points: "${{ steps.review.points }}"}
""")
    first = run_playbook(path)
    assert first.status == "waiting" and first.pending["draft"]["title"] == "第一稿标题"
    second = resume(first.run_id, decision={"action": "reject", "comment": "更具体", "by": "lead"})
    assert second.status == "waiting"
    assert second.pending["visit"] == 2 and second.pending["draft"]["title"] == "第二稿标题"
    store = SqliteStore(project_dir / ".playbook" / "state.db")
    for bad in (["points=9"], ["nope=1"], ["title"]):  # not editable, no such field, no value
        with pytest.raises(PlaybookError):
            build_decision(store, first.run_id, "approve", bad, None, None, "lead", time.time())
    decision = build_decision(store, first.run_id, "approve", ["title=终稿标题"], None, "好", "lead",
                              time.time())
    done = resume(first.run_id, decision=decision)
    assert done.status == "done" and done.outputs == {"title": "终稿标题", "points": 3}
    log = store.approvals(first.run_id)
    assert [(d["action"], d["by"]) for d in log] == [("reject", "lead"), ("approve", "lead")]
    assert log[1]["diff"] == [{"path": "title", "before": "第二稿标题", "after": "终稿标题"}]
    run_json = json.loads((Path(done.run_dir) / "run.json").read_text(encoding="utf-8"))
    assert run_json["status"] == "done" and len(run_json["approvals"]) == 2


def test_cost_limit_stops_cleanly_and_resume_with_higher_limit_repeats_nothing(project_dir: Path,
                                                                               server: FakeLLMServer) -> None:
    path = write_playbook(project_dir, """
name: costly
limits: {max_cost: 0.001}
inputs: {n: {type: integer, default: 40}}
steps:
  - id: label
    map: "${{ range(inputs.n) | list }}"
    batch: 2
    concurrency: 1
    llm: {prompt: "条目 ${{ item }} 的描述是一段较长的文字，用来消耗一些 token。", output: {tag: string}}
""")
    stopped = run_playbook(path)
    assert stopped.status == "failed" and "达到费用上限" in (stopped.error or "")
    assert stopped.cost > 0.001
    asked = len(server.requests)
    assert 0 < asked < 20
    done = resume(stopped.run_id, max_cost=10.0)
    assert done.status == "done", done.error
    assert len(server.requests) == 20  # the batches finished before the stop were not asked again


def test_cancel_a_waiting_run(project_dir: Path) -> None:
    path = write_playbook(project_dir, "name: c\nsteps:\n  - {id: ok, approval: {title: \"继续?\"}}\n")
    waiting = run_playbook(path)
    runner = Runner(load_project())
    assert runner.cancel(waiting.run_id) == "cancelled"
    assert runner.store.get_run(waiting.run_id)["status"] == "cancelled"
    runner.close()


def test_temperature_zero_responses_are_cached_across_runs(project_dir: Path, server: FakeLLMServer) -> None:
    path = write_playbook(project_dir, "name: c\ndefaults: {temperature: 0}\nsteps:\n"
                                       "  - {id: a, llm: {prompt: 同一个问题}}\n"
                                       "  - {id: b, cache: false, llm: {prompt: 不缓存的问题}}\n")
    run_playbook(path)
    run_playbook(path)
    assert len(server.prompts("同一个问题")) == 1 and len(server.prompts("不缓存的问题")) == 2


def test_sub_playbook_and_when(project_dir: Path, server: FakeLLMServer) -> None:
    server.add_rule("总结", "子流程的总结")
    write_summary_child(project_dir)
    path = write_playbook(project_dir, """
name: parent
inputs: {deep: {type: boolean, default: false}}
steps:
  - {id: sub, playbook: child.yaml, with: {topic: 双十一}}
  - {id: extra, when: "${{ inputs.deep }}", llm: {prompt: 深入分析}}
outputs: {summary: "${{ steps.sub.summary }}", extra: "${{ steps.extra.status }}"}
""")
    outcome = run_playbook(path)
    assert outcome.outputs == {"summary": "子流程的总结", "extra": "skipped"}
    assert server.prompts("总结 双十一") and not server.prompts("深入分析")


def test_approval_timeout_applies_on_timeout_and_edits_file(project_dir: Path, server: FakeLLMServer) -> None:
    server.add_rule("写标题", {"title": "草稿"})
    path = write_playbook(project_dir, """
name: timed
steps:
  - {id: draft, llm: {prompt: 写标题, output: {title: string}}}
  - id: review
    approval: {title: 审核, show: "${{ steps.draft.output }}", editable: [title], timeout: 0.2s,
               on_timeout: approve}
outputs: {title: "${{ steps.review.title }}"}
""")
    waiting = run_playbook(path)
    store = SqliteStore(project_dir / ".playbook" / "state.db")
    edits = project_dir / "edits.json"
    edits.write_text('{"titel": "x"}', encoding="utf-8")
    with pytest.raises(PlaybookError, match="字段 titel 不可修改"):
        build_decision(store, waiting.run_id, "approve", [], edits, None, "a", time.time())
    deadline = (store.get_run(waiting.run_id) or {})["pending"]["deadline"]
    assert timeout_decision(store, waiting.run_id, now=deadline - 0.01) is None  # not yet due (no clock race)
    decision = timeout_decision(store, waiting.run_id, now=deadline)
    assert decision is not None and decision["action"] == "approve" and decision["by"] == "timeout"
    done = resume(waiting.run_id, decision=decision)
    assert done.outputs == {"title": "草稿"}
    assert store.approvals(waiting.run_id)[0]["by"] == "timeout"
