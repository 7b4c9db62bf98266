"""The LLM layer through litellm against the fake server: retries, Retry-After, timeouts, repair."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from runner.config import load_project
from runner.dsl.output_schema import to_json_schema, to_model
from runner.dsl.spec import Retry
from runner.errors import RunError
from runner.models.llm import LlmClient, LlmRequest
from runner.testing import FakeLLMServer, Faults

pytestmark = pytest.mark.usefixtures("english")  # these tests check what the messages say, in English

MODEL = to_model(to_json_schema({"sentiment": {"enum": ["正面", "负面"]}, "topic": "string"}))


def ask(retry: Retry | None = None, timeout: float = 30) -> tuple[object, ...]:
    client = LlmClient(load_project())
    request = LlmRequest("default", [{"role": "user", "content": "评论：很好"}], MODEL, timeout=timeout,
                         retry=retry or Retry(attempts=4, backoff=0.05, max_backoff=1), step="s")
    result = asyncio.run(client.complete(request))
    return result.content, result.calls, result.tokens_in, result.cost


def test_429_waits_for_retry_after_then_succeeds(project_dir: Path, server: FakeLLMServer) -> None:
    server.faults = Faults(sequence=[429, 500], retry_after=0.6)
    content, _calls, tokens_in, cost = ask()
    assert isinstance(content, dict) and content["sentiment"] in ("正面", "负面")
    times = [r["time"] for r in server.requests]
    assert [r["status"] for r in server.requests] == [429, 500, 200]
    assert times[1] - times[0] >= 0.6  # Retry-After honoured
    assert tokens_in > 0 and cost > 0  # priced from playbook.toml


def test_client_error_is_not_retried(project_dir: Path, server: FakeLLMServer) -> None:
    server.faults = Faults(sequence=[400])
    with pytest.raises(RunError, match=r"refused the request \(400\)"):
        ask()
    assert len(server.requests) == 1


def test_a_hang_past_the_timeout_is_retried(project_dir: Path, server: FakeLLMServer) -> None:
    server.faults = Faults(sequence=["hang"], hang_seconds=4)
    content, *_ = ask(timeout=1)
    assert isinstance(content, dict)
    assert len(server.requests) == 2


def test_malformed_and_truncated_json_are_repaired_by_reasking(project_dir: Path,
                                                                server: FakeLLMServer) -> None:
    server.faults = Faults(sequence=["malformed", "truncated"])
    content, calls, *_ = ask()
    assert isinstance(content, dict) and calls == 3
    assert "你的输出无效" in server.requests[-1]["prompt"]


def test_persistent_failure_names_model_and_attempts(project_dir: Path, server: FakeLLMServer) -> None:
    server.faults = Faults(server_error=1.0)
    with pytest.raises(RunError, match=r"model 'default' \(openai/fake\) still failing after 3 attempts"):
        ask(Retry(attempts=3, backoff=0.01, max_backoff=0.05))
    assert len(server.requests) == 3


def test_default_falls_back_to_local_without_a_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("OPENAI_API_KEY", "PLAYBOOK_MODEL_DEFAULT"):
        monkeypatch.delenv(name, raising=False)
    project = load_project()
    assert project.resolve_model("default")[0] == "local"
    project.resolve_model("default")
    assert len(project.notices) == 1 and "embedded 'local' model" in project.notices[0]
    monkeypatch.setenv("PLAYBOOK_MODEL_DEFAULT", "deepseek/deepseek-chat")
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-x")
    assert load_project().resolve_model("default") == ("default", load_project().settings.models["default"])


def test_a_process_running_many_event_loops_keeps_no_client_of_a_closed_one(project_dir: Path,
                                                                             server: FakeLLMServer) -> None:
    """A worker runs each task in an `asyncio.run` of its own: the pooled client, the model's limiter and their
    loop go when the loop does (they were kept for ever, one set per task)."""
    import gc

    from openai import AsyncOpenAI

    client = LlmClient(load_project())

    def live_clients() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if isinstance(o, AsyncOpenAI))

    async def ask(i: int) -> str:
        reply = await client.complete(LlmRequest(alias="default", step="s", cache=False,
                                                 messages=[{"role": "user", "content": f"第 {i} 次"}]))
        return str(reply.text)

    before = live_clients()
    for i in range(12):
        assert asyncio.run(ask(i))
    assert live_clients() - before <= 1  # at most the last loop's, not one per loop
