"""The only module that imports litellm: aliases, structured output, retries, rate limits, cache, cost."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import os
import random
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from runner import signals
from runner.config import LOCAL, ModelConfig, Project
from runner.dsl.spec import Retry
from runner.errors import RunError
from runner.i18n import _
from runner.messages import summarise
from runner.models import model_table, openai_compatible
from runner.models.limits import model_limiter
from runner.models.retry import reason, refused_key, retry_after, transient
from runner.store import Store

MAX_REPAIRS = 2
SCHEMA_INSTRUCTION = "\n\n只输出一个 JSON 对象，不要输出任何其他文字。它必须符合以下 JSON Schema：\n"


@dataclass
class LlmRequest:
    alias: str
    messages: list[dict[str, Any]]
    output_model: type[BaseModel] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float = 120.0
    retry: Retry = field(default_factory=Retry)
    cache: bool | None = None
    step: str = ""
    schema: dict[str, Any] | None = None  # schema to send, when stricter than output_model
    tools: list[dict[str, Any]] | None = None  # OpenAI function-calling tool definitions
    sampling: dict[str, Any] = field(default_factory=dict)  # top_p, penalties, seed, stop: as the provider takes them


@dataclass
class LlmResult:
    content: Any  # parsed dict when output_model is set, else text
    text: str
    model: str
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    cached: bool = False
    calls: int = 0
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # [{id, name, arguments (JSON text)}]


@dataclass
class LlmReply:
    """One provider answer, before parsing (what a cassette records)."""

    text: str
    tool_calls: list[dict[str, Any]]
    tokens_in: int
    tokens_out: int
    cost: float


@dataclass
class LlmCall:
    """One request as the step wrote it (plus repair turns), for a cassette to key, store and diff."""

    step: str
    alias: str
    model: str
    messages: list[dict[str, Any]]
    temperature: float | None
    max_tokens: int | None
    schema: dict[str, Any] | None
    tools: list[dict[str, Any]] | None
    sampling: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        """Stable across machines: the alias, not the endpoint it resolves to, so a cassette recorded
        against one server replays anywhere. Sampling parameters join the key only when set (cassettes
        recorded before they existed keep their keys)."""
        blob = json.dumps([self.alias, self.messages, self.temperature, self.max_tokens, self.schema, self.tools,
                           *([self.sampling] if self.sampling else [])], ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]


class ReplySource(Protocol):
    """Stands between the client and the provider: evals record replies into a cassette or serve them
    from one. `fetch` makes the real call (with retries and rate limits)."""

    async def reply(self, call: LlmCall, fetch: Callable[[], Awaitable[LlmReply]]) -> LlmReply: ...


_LITELLM_READY = threading.Event()  # set once `import litellm` has finished (in whichever thread ran it)


def litellm_module() -> Any:
    """litellm, imported once and set up (its cost map read locally, no debug banner, unknown parameters dropped)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.drop_params = True
    _LITELLM_READY.set()
    return litellm


async def _client_ready(config: ModelConfig) -> None:
    """The library that sends a request, imported (seconds for litellm, half a second for the openai SDK) off the
    event loop. Done before a request takes its turn under the model's limits: a turn taken and then spent on an
    import makes requests leave in a bunch later — a provider's window sees more than the limit let through."""
    if openai_compatible.handles(config):
        if "openai" not in sys.modules:
            await asyncio.to_thread(importlib.import_module, "openai")
        model_table.facts(config.model)  # read once, cached
    elif not _LITELLM_READY.is_set():
        await asyncio.to_thread(litellm_module)


def preload() -> None:
    """Start importing litellm (seconds of CPU) in a background thread, as soon as a run that will call a
    remote model starts: loading files, dedupe and clustering overlap it instead of the first call waiting."""
    if _LITELLM_READY.is_set() or any(t.name == "litellm-import" for t in threading.enumerate()):
        return
    threading.Thread(target=litellm_module, name="litellm-import", daemon=True).start()


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None, reason: str) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.reason = reason  # rate_limited, server, timeout, connection, malformed: the retries metric's label


class LlmClient:
    def preload_for(self, aliases: set[str]) -> None:
        """Preload litellm when any of these model aliases goes through it (not the embedded model, not an
        OpenAI-compatible `api_base` server)."""
        configs = [self.project.resolve_model(alias)[1] for alias in aliases]
        if any(c.model != LOCAL and not openai_compatible.handles(c) for c in configs):
            preload()
        if any(openai_compatible.handles(c) for c in configs):
            openai_compatible.preload()

    def __init__(self, project: Project, store: Store | None = None, *,
                 replies: ReplySource | None = None) -> None:
        self.project = project
        self.store = store
        self.replies = replies

    def cache_key(self, config: ModelConfig, request: LlmRequest, schema: dict[str, Any] | None) -> str:
        """The reply cache keys on what was really asked of whom: the resolved model id and its endpoint
        (two servers serving the same model id are different models), then the request itself."""
        blob = json.dumps([config.model, _endpoint(config), request.messages, request.temperature, request.max_tokens,
                           schema, request.tools, *([request.sampling] if request.sampling else [])],
                          ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    async def complete(self, request: LlmRequest) -> LlmResult:
        alias, config = self.project.resolve_model(request.alias)
        schema = request.schema or (json_schema(request.output_model) if request.output_model else None)
        use_cache = request.cache if request.cache is not None else request.temperature == 0
        key = self.cache_key(config, request, schema)
        if use_cache and self.store is not None and (hit := self.store.cache_get(key)) is not None:
            return LlmResult(hit["content"], hit["text"], alias, cached=True, tool_calls=hit.get("tool_calls", []))
        messages = [dict(m) for m in request.messages]
        if schema is not None and config.model == LOCAL:
            # the grammar enforces the schema; a small model only gets confused by its text
            fields = ", ".join(schema.get("properties", {}))
            messages[-1] = with_text_appended(messages[-1], f"\n\n只输出 JSON，字段：{fields}。")
        elif schema is not None:
            messages[-1] = with_text_appended(messages[-1],
                                              f"{SCHEMA_INSTRUCTION}{json.dumps(schema, ensure_ascii=False)}")
        result = LlmResult(None, "", alias)
        for repair in range(MAX_REPAIRS + 1):
            reply = await self._call(alias, config, request, messages, schema)
            result.tokens_in += reply.tokens_in
            result.tokens_out += reply.tokens_out
            result.cost += reply.cost
            result.calls += 1
            result.text = text = reply.text
            result.tool_calls = reply.tool_calls
            if request.output_model is None or reply.tool_calls:
                result.content = text
                break
            try:
                result.content = parse_structured(text, request.output_model)
                break
            except ValueError as exc:
                if repair == MAX_REPAIRS:
                    raise RunError(_("model '{alias}' did not return valid JSON for the output schema after "
                                     "{MAX_REPAIRS} repairs: {exc}").format(
                                       alias=alias, MAX_REPAIRS=MAX_REPAIRS, exc=exc), step=request.step) from None
                messages = [*messages, {"role": "assistant", "content": text},
                            {"role": "user", "content": f"你的输出无效：{exc}。请只输出修正后的 JSON。"}]
        if use_cache and self.store is not None:
            self.store.queue_cache(key, {"content": result.content, "text": result.text,
                                         "tool_calls": result.tool_calls})
        return result

    async def _call(self, alias: str, config: ModelConfig, request: LlmRequest,
                    messages: list[dict[str, Any]], schema: dict[str, Any] | None) -> LlmReply:
        if self.replies is None:
            return await self._fetch(alias, config, request, messages, schema)
        # keyed on the request as the step wrote it (plus any repair turns), not on the model-specific schema
        # instruction, so a cassette recorded against a server replays where `default` resolves elsewhere
        written = [*request.messages, *messages[len(request.messages):]]
        call = LlmCall(request.step, request.alias, config.model, written, request.temperature, request.max_tokens,
                       schema, request.tools, request.sampling)
        return await self.replies.reply(call, lambda: self._fetch(alias, config, request, messages, schema))

    async def _fetch(self, alias: str, config: ModelConfig, request: LlmRequest,
                     messages: list[dict[str, Any]], schema: dict[str, Any] | None) -> LlmReply:
        # a plain loop, not tenacity: its per-call bookkeeping was 4% of the engine's CPU per LLM call
        attempts = max(1, request.retry.attempts)
        shared = self.project.settings.queue.broker if config.model != LOCAL else None  # the local model is per machine
        if config.model != LOCAL:
            await _client_ready(config)  # before the limiter: a request's turn is taken as close to its send as can be
        for attempt in range(1, attempts + 1):
            try:
                async with model_limiter(alias, config, shared):
                    if config.model == LOCAL:
                        return await self._local(request, messages, schema)
                    return await self._remote(alias, config, request, messages, schema)
            except _Retryable as exc:
                if attempt == attempts:
                    raise RunError(_("model '{alias}' ({model}) still failing after {attempts} attempts: {exc}").format(
                                       alias=alias, model=config.model, attempts=attempts, exc=exc),
                                   step=request.step) from None
                signals.signal("retry", model=alias, reason=exc.reason)
                pause = _backoff(request.retry, attempt, exc)
                if exc.retry_after is not None:  # the provider said when: every request on this model waits
                    await model_limiter(alias, config, shared).hold(pause)
                await asyncio.sleep(pause)
        raise AssertionError("unreachable")

    async def _local(self, request: LlmRequest, messages: list[dict[str, Any]],
                     schema: dict[str, Any] | None) -> LlmReply:
        from runner.models import local_model
        if request.tools:
            raise RunError(_("the embedded 'local' model cannot call tools; give this agent step a `model:` that "
                             "supports function calling"), step=request.step)
        reply = await local_model.complete(messages, schema=schema, max_tokens=request.max_tokens or 2048,
                                           temperature=request.temperature or 0.0,
                                           settings=self.project.settings.local, sampling=request.sampling)
        return LlmReply(reply["text"], [], reply["tokens_in"], reply["tokens_out"], 0.0)

    async def _remote(self, alias: str, config: ModelConfig, request: LlmRequest,
                      messages: list[dict[str, Any]], schema: dict[str, Any] | None) -> LlmReply:
        api_key = config.api_key()
        params: dict[str, Any] = {"messages": messages, "timeout": request.timeout,
                                  "temperature": request.temperature, "max_tokens": request.max_tokens,
                                  **request.sampling}
        if request.tools:
            params["tools"] = request.tools
        direct = openai_compatible.handles(config)
        facts = model_table.facts(config.model)
        prices = facts.input_cost_per_token, facts.output_cost_per_token
        native = facts.supports_response_schema
        if not direct:
            if not _LITELLM_READY.is_set():  # the first import takes seconds: keep the loop (and Ctrl-C) live
                await asyncio.to_thread(litellm_module)  # (waits on the import lock if the preload thread is mid-it)
            native = _supports_schema(config.model)  # litellm also knows what whole providers support
        if schema is not None and not request.tools:
            params["response_format"] = _response_format(
                config.structured_output if config.structured_output is not None else native, schema)
        try:
            if direct:
                reply = await openai_compatible.chat(config, api_key, params)
                text, calls, tokens_in, tokens_out = reply.text, reply.tool_calls, reply.tokens_in, reply.tokens_out
            else:
                text, calls, tokens_in, tokens_out = await _through_litellm(litellm_module(), config, api_key, params)
        except (AttributeError, IndexError) as exc:  # a 200 without choices or message: retried like a 5xx
            raise _Retryable(_("malformed response: {exc}").format(exc=exc), None, "malformed") from None
        except Exception as exc:
            raise _classify(exc, alias, config, request.step) from None
        return LlmReply(text, calls, tokens_in, tokens_out, self._cost(config, prices, tokens_in, tokens_out))

    def _cost(self, config: ModelConfig, prices: tuple[float, float], tokens_in: int, tokens_out: int) -> float:
        """In `currency`: the configured prices (per million tokens), else litellm's table's USD per token ×
        usd_rate."""
        if config.input_price is not None or config.output_price is not None:
            return (tokens_in * (config.input_price or 0) + tokens_out * (config.output_price or 0)) / 1e6
        return (tokens_in * prices[0] + tokens_out * prices[1]) * self.project.settings.usd_rate


async def _through_litellm(litellm: Any, config: ModelConfig, api_key: str,
                           params: dict[str, Any]) -> tuple[str, list[dict[str, Any]], int, int]:
    kwargs = {"model": config.model, "num_retries": 0, "max_retries": 0,
              **{k: v for k, v in params.items() if v is not None}}
    if config.api_base:
        kwargs["api_base"] = config.api_base
    if api_key:
        kwargs["api_key"] = api_key
    if "tools" in kwargs:
        # litellm routes any call with tools through its MCP bridge, which needs the optional `mcp`
        # package; our tools are plain functions, so skip it
        kwargs["_skip_mcp_handler"] = True
    response = await litellm.acompletion(**kwargs)
    message = response.choices[0].message
    calls = [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments or "{}"}
             for c in (getattr(message, "tool_calls", None) or [])]
    usage = getattr(response, "usage", None)
    return (message.content or "", calls, int(getattr(usage, "prompt_tokens", 0) or 0),
            int(getattr(usage, "completion_tokens", 0) or 0))


def with_text_appended(message: dict[str, Any], text: str) -> dict[str, Any]:
    """The message with `text` added to its words (to its last text part when it carries images too)."""
    content = message.get("content")
    if not isinstance(content, list):
        return {**message, "content": f"{content or ''}{text}"}
    parts = [dict(part) for part in content]
    last = max((i for i, part in enumerate(parts) if part.get("type") == "text"), default=None)
    if last is None:
        parts.insert(0, {"type": "text", "text": text.lstrip()})
    else:
        parts[last]["text"] = f"{parts[last]['text']}{text}"
    return {**message, "content": parts}


def message_text(message: dict[str, Any]) -> str:
    """What a message says, its images shown as [image] (for the run's events and pages)."""
    content = message.get("content")
    if not isinstance(content, list):
        return str(content or "")
    return "\n".join(str(part.get("text", "")) if part.get("type") == "text" else "[image]" for part in content)


def _endpoint(config: ModelConfig) -> str:
    """Where the model answers from: its `api_base`, the embedded model's GGUF file, or the provider's own API."""
    if config.model == LOCAL:
        return "gguf:" + os.environ.get("PLAYBOOK_LOCAL_GGUF", "gemma3-270m")
    if config.api_base:
        return config.api_base.rstrip("/")
    return "provider:" + (config.model.split("/", 1)[0] if "/" in config.model else "openai")


def _response_format(native: bool, schema: dict[str, Any]) -> dict[str, Any]:
    if native:
        return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
    return {"type": "json_object"}


@lru_cache(maxsize=256)
def _supports_schema(model: str) -> bool:
    try:
        return bool(litellm_module().supports_response_schema(model=model))
    except Exception:
        return False


def _classify(exc: Exception, alias: str, config: ModelConfig, step: str) -> Exception:
    """Retry on 429, 5xx, timeouts and connection errors; fail at once on other 4xx."""
    status = getattr(exc, "status_code", None)
    name = type(exc).__name__
    if transient(exc):
        return _Retryable(f"{name} ({status}): {str(exc)[:200]}", retry_after(exc), reason(exc))
    if refused_key(exc):
        return RunError(_("model '{alias}' ({model}) rejected the API key ({status}); set {value} to a valid key. "
                          "Provider said: {name}").format(
                            alias=alias, model=config.model, status=status,
                            value=config.key_env() or 'the key variable', name=str(exc)[:200]), step=step)
    return RunError(_("model '{alias}' ({model}) refused the request ({value}): {name}").format(
                        alias=alias, model=config.model, value=status or name, name=str(exc)[:300]), step=step)


def _backoff(policy: Retry, attempt: int, exc: _Retryable) -> float:
    """The provider's Retry-After when it sent one, else exponential backoff with jitter (both capped)."""
    if exc.retry_after is not None:
        return float(min(exc.retry_after, policy.max_backoff))
    base = min(policy.backoff * 2 ** (attempt - 1), policy.max_backoff)
    return float(base / 2 + random.uniform(0, base / 2))


@lru_cache(maxsize=512)
def _schema_text(model: type[BaseModel]) -> str:
    return json.dumps(model.model_json_schema(), ensure_ascii=False)


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema, generated once per model (a fresh copy each call)."""
    loaded: dict[str, Any] = json.loads(_schema_text(model))
    return loaded


def parse_structured(text: str, model: type[BaseModel]) -> dict[str, Any]:
    """The first JSON object in `text`, validated; ValueError says what is wrong."""
    body = text.strip()
    if body.startswith("```"):
        body = body.strip("`").removeprefix("json").strip()
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end <= start:
        shown = " ".join(body.split())[:80]
        said = _("no JSON object in the reply (it began: {text!r})").format(text=shown) if shown else \
            _("no JSON object in the reply (it was empty)")
        raise ValueError(said)
    try:
        data = json.loads(body[start:end + 1])
    except json.JSONDecodeError as exc:
        raise ValueError(_("invalid JSON ({msg} at char {pos})").format(msg=exc.msg, pos=exc.pos)) from None
    try:
        return model.model_validate(data).model_dump(mode="json")
    except PydanticValidationError as exc:
        problems = summarise(exc.errors())
        raise ValueError(_("does not match the schema: {problems}").format(problems=problems)) from None
