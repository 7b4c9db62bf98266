"""The reply cache keys on the endpoint as well as the model id; the README's fake-server recipe works as written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runner.testing import FakeLLMServer
from tests.conftest import run_playbook, write_playbook

ASK = """
name: ask
defaults: {temperature: 0}
steps:
  - {id: answer, llm: {prompt: 今天的口号是什么}}
outputs: {answer: "${{ steps.answer.output }}"}
"""


def test_a_cached_reply_from_one_server_is_not_served_for_another(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = write_playbook(tmp_path, ASK)
    with FakeLLMServer() as first, FakeLLMServer() as second:
        first.add_rule("口号", "来自第一台")
        second.add_rule("口号", "来自第二台")
        answers = []
        for server in (first, second, second, first):
            (tmp_path / "playbook.toml").write_text(
                f'[models.default]\nmodel = "openai/fake"\napi_base = "{server.url}"\n', encoding="utf-8")
            answers.append(run_playbook(path).outputs["answer"])
    assert answers == ["来自第一台", "来自第二台", "来自第二台", "来自第一台"]
    assert len(first.requests) == 1 and len(second.requests) == 1  # the repeats came from the cache


def test_the_readme_fake_server_recipe_needs_no_key(tmp_path: Path) -> None:
    path = write_playbook(tmp_path, ASK)
    with FakeLLMServer() as server:
        server.add_rule("口号", "假服务器的回答")
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
        env |= {"PLAYBOOK_MODEL_DEFAULT": "openai/fake", "PLAYBOOK_API_BASE_DEFAULT": f"{server.url}"}
        done = subprocess.run([sys.executable, "-m", "runner", "run", str(path)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "假服务器的回答" in done.stdout and "embedded" not in done.stderr
    assert len(server.requests) == 1


STRUCTURED = """
name: structured
defaults: {temperature: 0, retry: {attempts: 4, backoff: 0.05s}}
steps:
  - id: answer
    llm: {prompt: 给这条评论打标签：物流太慢, output: {sentiment: {enum: [正面, 中性, 负面]}, topic: string}}
outputs: {sentiment: "${{ steps.answer.sentiment }}"}
"""


@pytest.mark.parametrize("model", ["openai/fake", "deepseek/deepseek-chat"])
def test_both_call_paths_ask_retry_parse_and_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   model: str) -> None:
    """`openai/…` with an api_base goes through the openai SDK (runner/models/openai_compatible.py); any
    other provider through litellm. Same request, same retries on 429 and 500, same parsing and usage; the
    cost of a model litellm prices comes from its price table."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-test")
    path = write_playbook(tmp_path, STRUCTURED)
    with FakeLLMServer() as server:
        server.add_rule("打标签", {"sentiment": "负面", "topic": "物流"})
        server.faults.sequence = [429, 500]
        (tmp_path / "playbook.toml").write_text(
            f'[models.default]\nmodel = "{model}"\napi_base = "{server.url}"\n', encoding="utf-8")
        outcome = run_playbook(path)
    assert outcome.status == "done", outcome.error
    assert outcome.outputs == {"sentiment": "负面"}
    assert [r["status"] for r in server.requests] == [429, 500, 200]
    assert server.requests[-1]["response_format"]["type"] in ("json_object", "json_schema")
    assert "物流太慢" in server.requests[-1]["prompt"]
    assert outcome.tokens_in > 0 and outcome.tokens_out > 0
    assert (outcome.cost > 0) == model.startswith("deepseek/")  # the fake model id has no price
