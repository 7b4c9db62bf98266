"""The seam between the LLM client (runner/models/llm.py: cache, structured output, repairs, retries, limits, cost)
and whatever sends a request. A provider is one small class; a third (a native Anthropic client, a batch API) is one
module plus one entry in PROVIDERS. Its errors are classified by the client (runner/models/retry.py): they carry an
HTTP `status_code` like the openai SDK's and litellm's."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from runner.config import ModelConfig, ProjectFile
from runner.models import model_table


@dataclass
class ProviderRequest:
    """One request as a provider sends it: the messages (with the schema's instruction already in them), the
    OpenAI-style parameters that are set, and the output schema when one is asked for."""

    messages: list[dict[str, Any]]
    schema: dict[str, Any] | None  # the JSON Schema the reply must follow, or None for text
    timeout: float
    temperature: float | None = None
    max_tokens: int | None = None
    tools: list[dict[str, Any]] | None = None
    sampling: dict[str, Any] = field(default_factory=dict)  # top_p, penalties, seed, stop
    structured_output: bool | None = None  # the model's [models.X] structured_output, when set
    step: str = ""


@dataclass
class ProviderReply:
    text: str
    tool_calls: list[dict[str, Any]]  # [{id, name, arguments (JSON text)}]
    tokens_in: int
    tokens_out: int


class Provider(Protocol):
    name: str
    shared_limits: bool  # its rate limits hold across a team server's workers (not a model on this machine)

    def handles(self, config: ModelConfig) -> bool:
        """Whether this provider sends this model's requests (PROVIDERS: the first that says yes does)."""
        ...

    def preload(self) -> None:
        """Start loading what a first call needs (a library import), in a background thread."""
        ...

    async def ready(self, config: ModelConfig) -> None:
        """What a call needs is loaded, off the event loop: called before a request takes its turn under the
        model's limits, so a turn is not spent on an import."""
        ...

    def price(self, config: ModelConfig) -> tuple[float, float]:
        """USD per input and per output token (when playbook.toml gives no prices)."""
        ...

    def schema_instruction(self, schema: dict[str, Any]) -> str:
        """What is appended to the last message when a JSON reply is asked for."""
        ...

    async def call(self, config: ModelConfig, api_key: str, request: ProviderRequest,
                   settings: ProjectFile) -> ProviderReply: ...


SCHEMA_INSTRUCTION = "\n\n只输出一个 JSON 对象，不要输出任何其他文字。它必须符合以下 JSON Schema：\n"


class RemoteProvider:
    """What the providers of a remote model share: prices from litellm's model table (read without importing
    litellm: runner/models/model_table.py), and the whole schema written into the prompt."""

    def price(self, config: ModelConfig) -> tuple[float, float]:
        facts = model_table.facts(config.model)
        return facts.input_cost_per_token, facts.output_cost_per_token

    def schema_instruction(self, schema: dict[str, Any]) -> str:
        return f"{SCHEMA_INSTRUCTION}{json.dumps(schema, ensure_ascii=False)}"


def response_format(native: bool, schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI `response_format` for a schema: the schema itself where the model enforces it, else JSON mode."""
    if native:
        return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
    return {"type": "json_object"}


def openai_params(request: ProviderRequest, native_schema: bool) -> dict[str, Any]:
    """The OpenAI chat parameters of a request, unset ones left out."""
    params: dict[str, Any] = {"messages": request.messages, "timeout": request.timeout,
                              "temperature": request.temperature, "max_tokens": request.max_tokens,
                              **request.sampling}
    if request.tools:
        params["tools"] = request.tools
    if request.schema is not None and not request.tools:
        native = request.structured_output if request.structured_output is not None else native_schema
        params["response_format"] = response_format(native, request.schema)
    return {k: v for k, v in params.items() if v is not None}


def tool_calls_of(message: Any) -> list[dict[str, Any]]:
    return [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments or "{}"}
            for c in (getattr(message, "tool_calls", None) or [])]


def usage_of(response: Any) -> tuple[int, int]:
    usage = getattr(response, "usage", None)
    return int(getattr(usage, "prompt_tokens", 0) or 0), int(getattr(usage, "completion_tokens", 0) or 0)
