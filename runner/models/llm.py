"""The LLM client every step calls: aliases, the reply cache, structured output and its repairs, retries, rate
limits, cost. What sends a request is a provider (runner/models/provider.py, chosen in runner/models/routing.py)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
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
from runner.models.limits import model_limiter
from runner.models.provider import Provider, ProviderRequest
from runner.models.retry import reason, refused_key, retry_after, transient
from runner.models.routing import provider_for
from runner.store import Store

MAX_REPAIRS = 2


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


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None, reason: str) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.reason = reason  # rate_limited, server, timeout, connection, malformed: the retries metric's label


class LlmClient:
    def preload_for(self, aliases: set[str]) -> None:
        """Start loading what the providers of these model aliases need (litellm's seconds of import, the SDK's
        half second) in the background, as soon as a run that will call them starts."""
        for provider in {id(p): p for p in (provider_for(self.project.resolve_model(a)[1]) for a in aliases)}.values():
            provider.preload()

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
        if schema is not None:
            messages[-1] = with_text_appended(messages[-1], provider_for(config).schema_instruction(schema))
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
        provider = provider_for(config)
        await provider.ready(config)  # before the limiter: a request's turn is taken as close to its send as can be
        sent = ProviderRequest(messages, schema, request.timeout, request.temperature, request.max_tokens,
                               request.tools, request.sampling, config.structured_output, request.step)
        shared = self.project.settings.queue.broker if provider.shared_limits else None

        async def attempt() -> LlmReply:
            async with model_limiter(alias, config, shared):
                return await self._send(provider, alias, config, sent)

        try:
            return await attempt()  # most calls end here: the retry machinery is entered only after a failure
        except _Retryable as first:
            failed = first
        attempts = max(1, request.retry.attempts)
        try:
            if attempts > 1:
                return await _retrying(attempt, failed, request.retry, attempts - 1, model_limiter(alias, config,
                                                                                                    shared), alias)
        except _Retryable as exc:
            failed = exc
        raise RunError(_("model '{alias}' ({model}) still failing after {attempts} attempts: {exc}").format(
                           alias=alias, model=config.model, attempts=attempts, exc=failed), step=request.step) from None

    async def _send(self, provider: Provider, alias: str, config: ModelConfig, request: ProviderRequest) -> LlmReply:
        try:
            reply = await provider.call(config, config.api_key(), request, self.project.settings)
        except RunError:
            raise
        except (AttributeError, IndexError) as exc:  # a 200 without choices or message: retried like a 5xx
            raise _Retryable(_("malformed response: {exc}").format(exc=exc), None, "malformed") from None
        except Exception as exc:
            raise _classify(exc, alias, config, request.step) from None
        cost = self._cost(config, provider.price(config), reply.tokens_in, reply.tokens_out)
        return LlmReply(reply.text, reply.tool_calls, reply.tokens_in, reply.tokens_out, cost)

    def _cost(self, config: ModelConfig, prices: tuple[float, float], tokens_in: int, tokens_out: int) -> float:
        """In `currency`: the configured prices (per million tokens), else litellm's table's USD per token ×
        usd_rate."""
        if config.input_price is not None or config.output_price is not None:
            return (tokens_in * (config.input_price or 0) + tokens_out * (config.output_price or 0)) / 1e6
        return (tokens_in * prices[0] + tokens_out * prices[1]) * self.project.settings.usd_rate


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


async def _retrying(attempt: Callable[[], Awaitable[LlmReply]], first: _Retryable, policy: Retry, tries: int,
                   limiter: Any, alias: str) -> LlmReply:
    """The tries after a first failed one, with tenacity (imported here: a call that succeeds at once never pays
    for it). Each wait is the provider's Retry-After when it sent one (then every request on the model waits, not
    only this one), else exponential backoff with jitter."""
    from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

    def wait(state: RetryCallState) -> float:
        failed = state.outcome.exception() if state.outcome is not None else None
        return _backoff(policy, state.attempt_number + 1, failed if isinstance(failed, _Retryable) else first)

    async def before_sleep(state: RetryCallState) -> None:
        failed = state.outcome.exception() if state.outcome is not None else None
        await _announce(failed if isinstance(failed, _Retryable) else first,
                        state.next_action.sleep if state.next_action else 0.0, limiter, alias)

    pause = _backoff(policy, 1, first)
    await _announce(first, pause, limiter, alias)
    await asyncio.sleep(pause)
    retrying = AsyncRetrying(stop=stop_after_attempt(tries), wait=wait, retry=retry_if_exception_type(_Retryable),
                             before_sleep=before_sleep, reraise=True)
    result: LlmReply = await retrying(attempt)
    return result


async def _announce(failed: _Retryable, pause: float, limiter: Any, alias: str) -> None:
    signals.signal("retry", model=alias, reason=failed.reason)
    if failed.retry_after is not None:  # the provider said when: every request on this model waits
        await limiter.hold(pause)


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
