"""An inline map body (`map:` with `steps:`) runs several steps per item — reading the item, the playbook's inputs
and its `with:` values — without a separate file; validate checks its steps at their own lines."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runner.dsl.validate import load_and_validate
from runner.errors import PlaybookError, PlaybookValidationError
from runner.testing import FakeLLMServer
from tests.conftest import cli, resume, run_playbook, write_playbook

pytestmark = pytest.mark.usefixtures("english")

BODY = """
name: replies
inputs:
  comments: {type: list, default: [物流太慢, 客服很好, 物流太慢]}
  tone: {default: 亲切}
steps:
  - id: brand
    template: 小店
  - id: per_comment
    map: ${{ inputs.comments }}
    as: comment
    concurrency: 3
    with: {shop: "${{ steps.brand.output }}"}
    steps:
      - id: label
        llm: {prompt: "分类：${{ comment }}", output: {topic: string}}
      - id: reply
        llm:
          prompt: >-
            用${{ inputs.tone }}的语气，以${{ shop }}的身份回复（${{ steps.label.output.topic }}）：${{ comment }}
  - id: summary
    template: ${{ steps.per_comment.output }}
outputs: {replies: "${{ steps.summary.output }}"}
"""


def test_each_item_runs_the_body_and_gives_its_last_output(project_dir: Path, server: FakeLLMServer) -> None:
    server.add_rule("分类：物流", {"topic": "物流"})
    server.add_rule("分类：客服", {"topic": "客服"})
    server.add_rule("回复（物流）", "抱歉久等")
    server.add_rule("回复（客服）", "谢谢夸奖")
    outcome = run_playbook(write_playbook(project_dir, BODY))
    assert outcome.status == "done", outcome.error
    assert outcome.outputs == {"replies": ["抱歉久等", "谢谢夸奖", "抱歉久等"]}
    replies = server.prompts("回复")
    assert "用亲切的语气，以小店的身份回复（物流）：物流太慢" in replies
    assert len(server.prompts("分类")) == 2  # the repeated comment is the same item: answered once


def test_declared_outputs_are_each_items_result(project_dir: Path, server: FakeLLMServer) -> None:
    path = write_playbook(project_dir, """
name: pairs
inputs: {names: {type: list, default: [甲, 乙]}}
steps:
  - id: each
    map: ${{ inputs.names }}
    steps:
      - {id: up, template: "${{ item }}！"}
      - {id: ask, llm: {prompt: "问${{ steps.up.output }}"}}
    outputs: {name: "${{ item }}", said: "${{ steps.ask.output }}"}
outputs: {pairs: "${{ steps.each.output }}"}
""")
    outcome = run_playbook(path)
    assert outcome.status == "done", outcome.error
    assert outcome.outputs == {"pairs": [{"name": "甲", "said": "ok"}, {"name": "乙", "said": "ok"}]}


def test_a_resumed_run_does_not_repeat_finished_items(project_dir: Path, server: FakeLLMServer) -> None:
    path = write_playbook(project_dir, """
name: flaky
inputs: {names: {type: list, default: [甲, 乙, 丙]}}
defaults: {retry: {attempts: 1}}
steps:
  - id: each
    map: ${{ inputs.names }}
    concurrency: 1
    steps:
      - {id: ask, llm: {prompt: "问${{ item }}"}}
""")
    server.faults.sequence = [200, 500]  # 甲 answers, 乙 fails the run
    first = run_playbook(path)
    assert first.status == "failed"
    second = resume(first.run_id)
    assert second.status == "done", second.error
    assert sorted(server.prompts("问")) == ["问丙", "问乙", "问乙", "问甲"]


@pytest.mark.parametrize(("body", "said"), [
    ("      - {id: ask, llm: {prompt: '${{ comment }}'}}", "8:33: step 'ask': unknown name 'comment'"),
    ("      - {id: ask, llm: {prompt: '${{ steps.nope.output }}'}}", "8:33: step 'ask': unknown step 'nope'"),
    ("      - {id: ask, tool: sheet.reed}", "8:25: step 'ask': unknown tool 'sheet.reed'"),
    ("      - {id: ok, approval: {title: 看看}}", "an approval inside an inline body would ask once per item"),
])
def test_a_mistake_inside_a_body_is_reported_at_its_line(tmp_path: Path, body: str, said: str) -> None:
    path = write_playbook(tmp_path, f"""
name: bad
steps:
  - id: each
    map: [a, b]
    steps:
      - {{id: first, template: x}}
{body}
""")
    with pytest.raises(PlaybookValidationError) as caught:
        load_and_validate(path)
    assert f"{path}:" in str(caught.value) and said in str(caught.value), str(caught.value)


def test_a_body_needs_a_map(tmp_path: Path) -> None:
    path = write_playbook(tmp_path, "name: bad\nsteps:\n  - {id: each, steps: [{id: a, template: x}]}\n")
    with pytest.raises(PlaybookError) as caught:
        load_and_validate(path)
    assert "an inline body (`steps:`) runs once per item of `map:`" in str(caught.value)


def test_a_run_killed_inside_a_body_resumes_without_asking_again(project_dir: Path, server: FakeLLMServer) -> None:
    """kill -9 while items' bodies run: `resume` finishes the run, and no body step whose answer was journaled
    before the kill is asked again (a request in flight at the kill may rightly be asked once more)."""
    path = write_playbook(project_dir, """
name: killed_body
steps:
  - id: each
    map: "${{ range(8) | list }}"
    concurrency: 1
    steps:
      - {id: first, llm: {prompt: "一问${{ item }}"}}
      - {id: second, llm: {prompt: "二问${{ item }}：${{ steps.first.output }}"}}
outputs: {count: "${{ steps.each.output | length }}"}
""")
    server.latency = 0.3
    process = subprocess.Popen([sys.executable, "-m", "runner", "run", str(path), "--run-id", "kb"],
                               cwd=project_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while sum(r["status"] == 200 for r in server.requests) < 5:  # a few bodies under way
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = time.time()
    before = list(server.requests)
    server.latency = 0.0
    resumed = cli("resume", "kb", cwd=project_dir)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    answered = {r["prompt"] for r in before if r["time"] + 0.3 < killed_at - 1.0}  # surely journaled
    again = [r["prompt"] for r in server.requests[len(before):]]
    assert not answered & set(again), answered & set(again)
    assert {p for p in [*again, *(r["prompt"] for r in before)] if p.startswith("二问")} == {
        f"二问{i}：ok" for i in range(8)}  # every item's body finished
