"""The provider seam (runner/models/provider.py): a provider is one class plus one entry in PROVIDERS, and the
client around it — schema instruction, repairs, retries after a failure, prices — works the same for it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.config import ModelConfig, ProjectFile, load_project
from runner.dsl.output_schema import to_json_schema, to_model
from runner.dsl.spec import Retry
from runner.errors import RunError
from runner.models import routing
from runner.models.llm import LlmClient, LlmRequest
from runner.models.provider import ProviderReply, ProviderRequest

pytestmark = pytest.mark.usefixtures("english")


class Overloaded(Exception):
    status_code = 529  # what Anthropic's API answers when it is overloaded: a 5xx, tried again


class Echo:
    """A provider written the way a native client would be: it answers with the fields the schema asks for."""

    name = "echo"
    shared_limits = False

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.requests: list[ProviderRequest] = []

    def handles(self, config: ModelConfig) -> bool:
        return config.model.startswith("echo/")

    def preload(self) -> None:
        pass

    async def ready(self, config: ModelConfig) -> None:
        pass

    def price(self, config: ModelConfig) -> tuple[float, float]:
        return 1e-6, 2e-6  # USD per token

    def schema_instruction(self, schema: dict[str, Any]) -> str:
        return "\n[answer as JSON with " + ", ".join(schema.get("properties", {})) + "]"

    async def call(self, config: ModelConfig, api_key: str, request: ProviderRequest,
                   settings: ProjectFile) -> ProviderReply:
        self.requests.append(request)
        if len(self.requests) <= self.failures:
            raise Overloaded("overloaded")
        answer = {name: "正面" for name in (request.schema or {}).get("properties", {})}
        return ProviderReply(json.dumps(answer, ensure_ascii=False), [], 10, 5)


@pytest.fixture
def echo_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (tmp_path / "playbook.toml").write_text('[models.echo]\nmodel = "echo/v1"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def _ask(provider: Echo, monkeypatch: pytest.MonkeyPatch, attempts: int = 3) -> Any:
    monkeypatch.setattr(routing, "PROVIDERS", [provider, *routing.PROVIDERS])  # the one entry a new provider adds
    model = to_model(to_json_schema({"sentiment": "string"}))
    request = LlmRequest("echo", [{"role": "user", "content": "评论：很好"}], model, step="s",
                         retry=Retry(attempts=attempts, backoff=0.01, max_backoff=0.05))
    return asyncio.run(LlmClient(load_project()).complete(request))


def test_a_provider_is_one_class_and_one_entry(echo_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = Echo()
    result = _ask(provider, monkeypatch)
    assert result.content == {"sentiment": "正面"}
    sent = provider.requests[0]
    assert sent.messages[-1]["content"].endswith("[answer as JSON with sentiment]")  # its own instruction
    assert sent.schema is not None and sent.step == "s"
    assert result.cost == pytest.approx((10 * 1e-6 + 5 * 2e-6) * 7.2)  # its prices × usd_rate


def test_its_errors_are_retried_by_the_client(echo_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = Echo(failures=2)
    result = _ask(provider, monkeypatch, attempts=3)
    assert result.content == {"sentiment": "正面"} and len(provider.requests) == 3

    provider = Echo(failures=5)
    with pytest.raises(RunError, match=r"still failing after 3 attempts"):
        _ask(provider, monkeypatch, attempts=3)
    assert len(provider.requests) == 3

    provider = Echo(failures=1)
    with pytest.raises(RunError, match=r"still failing after 1 attempts"):
        _ask(provider, monkeypatch, attempts=1)
    assert len(provider.requests) == 1


def test_every_model_has_exactly_one_first_provider() -> None:
    """The shipped providers split the models between them: the embedded one, an `api_base` OpenAI-compatible
    server, and litellm for the rest."""
    cases = {"local": "local", "openai/qwen": "openai-compatible", "deepseek/deepseek-chat": "litellm"}
    for model, expected in cases.items():
        config = ModelConfig(model=model, api_base="http://127.0.0.1:1/v1" if model == "openai/qwen" else None)
        assert routing.provider_for(config).name == expected
    assert routing.provider_for(ModelConfig(model="openai/gpt-4o")).name == "litellm"  # no api_base: the provider's
