"""The agent step: function calling over listed tools, errors fed back, final structured answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.testing import FakeLLMServer, serve_directory
from tests.conftest import allow_loopback, run_playbook, write_playbook

pytestmark = pytest.mark.usefixtures("english")  # these tests check what the messages say, in English

FIXTURES = Path(__file__).parent / "fixtures" / "html"


def test_agent_calls_tools_sees_errors_and_answers_in_schema(project_dir: Path, server: FakeLLMServer) -> None:
    allow_loopback(project_dir)
    with serve_directory(FIXTURES) as base:
        server.add_rule("调研", {"content": "我先读文章", "tool_calls": [
            {"name": "web__fetch", "arguments": {"url": f"{base}/gmw_source.html", "extract": "article"}},
            {"name": "web__fetch", "arguments": {"urll": "x"}},
            {"name": "file__write", "arguments": {"path": "/etc/x", "content": "no"}}]}, times=1)
        server.add_rule("调研", {"summary": "宇航员在太空不能喝酒", "sources": 1})
        path = write_playbook(project_dir, """
name: research
defaults: {temperature: 0}
steps:
  - id: scout
    agent:
      prompt: 调研这篇文章讲了什么
      tools: [web.fetch]
      max_turns: 3
      output: {summary: string, sources: integer}
outputs: {summary: "${{ steps.scout.summary }}"}
""")
        outcome = run_playbook(path)
    assert outcome.status == "done", outcome.error
    assert outcome.outputs == {"summary": "宇航员在太空不能喝酒"}
    first, second = server.requests[0], server.requests[1]
    assert first["tools"] == ["web__fetch"] and second["tools"] == ["web__fetch"]
    tool_answers = [m["content"] for m in second["messages"] if m["role"] == "tool"]
    assert "宇航员在太空中喝酒会怎么样" in tool_answers[0]
    assert tool_answers[1].startswith("error: invalid arguments for web.fetch")
    assert tool_answers[2].startswith("error: no tool 'file__write'; available: web__fetch")
    events = (Path(outcome.run_dir) / "events.jsonl").read_text(encoding="utf-8")
    assert '"via": "agent"' in events


def test_agent_that_never_finishes_stops_at_max_turns(project_dir: Path, server: FakeLLMServer) -> None:
    server.add_rule("循环", {"tool_calls": [{"name": "feed__read", "arguments": {"path": "missing.rss"}}]})
    path = write_playbook(project_dir, """
name: looping
steps:
  - {id: loop, agent: {prompt: 循环调用, tools: [feed.read], max_turns: 2}}
""")
    outcome = run_playbook(path)
    assert outcome.status == "failed"
    assert outcome.error == ("step 'loop': the agent did not finish within max_turns=2; raise max_turns or "
                             "narrow the task")
    tool_answers = [m["content"] for m in server.requests[1]["messages"] if m["role"] == "tool"]
    assert tool_answers == ["error: feed.read: argument 'path': file 'missing.rss' not found"]
