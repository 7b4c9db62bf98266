"""Embedding calls for knowledge bases: the model alias `embed` (`[models.embed]` in playbook.toml). An
OpenAI-compatible server (`api_base` with an `openai/` model) goes through the SDK, every other provider
through litellm.aembedding, imported only when such a model is used.

Texts go in batches of 32, `concurrency` batches at a time; a 429, a 5xx, a timeout or a dropped connection is
tried again (4 times, backing off, honouring Retry-After); any other refusal is an EmbedError that says what the
provider answered."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from runner import signals
from runner.config import ModelConfig
from runner.i18n import _
from runner.models import openai_compatible
from runner.models.retry import reason, refused_key, retry_after, transient

ALIAS = "embed"
BATCH = 32
ATTEMPTS = 4
TIMEOUT = 120.0


class EmbedError(Exception):
    """The embedding model could not be called; the message names the alias, the model and what to do."""


def configured(settings: Any) -> ModelConfig | None:
    """The project's `[models.embed]`, or None: then knowledge bases are searched with BM25 alone."""
    models = getattr(settings, "models", None) or {}
    config = models.get(ALIAS)
    return config if isinstance(config, ModelConfig) else None


def identity(config: ModelConfig) -> str:
    """What an index records of the model its vectors came from: a query must be embedded by the same one."""
    return f"{config.model} @ {config.api_base}" if config.api_base else config.model


async def embed(config: ModelConfig, texts: list[str], *,
                progress: Callable[[int], None] = lambda done: None) -> list[list[float]]:
    """One vector per text, in order. `progress(texts done)` after each batch."""
    batches = [texts[i:i + BATCH] for i in range(0, len(texts), BATCH)]
    gate = asyncio.Semaphore(config.concurrency)
    done = 0

    async def one(batch: list[str]) -> list[list[float]]:
        nonlocal done
        async with gate:
            vectors = await _with_retries(config, batch)
        done += len(batch)
        progress(done)
        return vectors

    results = await asyncio.gather(*(one(b) for b in batches))
    return [vector for batch in results for vector in batch]


async def _with_retries(config: ModelConfig, texts: list[str]) -> list[list[float]]:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await _call(config, texts)
        except EmbedError:
            raise
        except Exception as exc:
            if not transient(exc) or attempt == ATTEMPTS:
                raise _refusal(exc, config) from None
            signals.signal("retry", model="embed", reason=reason(exc))
            asked = retry_after(exc)
            await asyncio.sleep(min(30.0, asked) if asked is not None else random.uniform(0.5, 1.0) * 2 ** attempt)
    raise AssertionError("unreachable")  # pragma: no cover


async def _call(config: ModelConfig, texts: list[str]) -> list[list[float]]:
    api_key = config.api_key()
    if openai_compatible.handles(config):
        vectors, _tokens = await openai_compatible.embeddings(config, api_key, texts, TIMEOUT)
    else:
        from runner.models.litellm_provider import litellm_module

        litellm = await asyncio.to_thread(litellm_module)  # seconds of import: off the event loop
        kwargs: dict[str, Any] = {"model": config.model, "input": texts, "timeout": TIMEOUT, "num_retries": 0}
        if config.api_base:
            kwargs["api_base"] = config.api_base
        if api_key:
            kwargs["api_key"] = api_key
        response = await litellm.aembedding(**kwargs)
        rows = sorted(response.data, key=lambda row: _field(row, "index"))
        vectors = [list(_field(row, "embedding")) for row in rows]
    if len(vectors) != len(texts) or any(not v for v in vectors):
        raise EmbedError(_("embedding model '{alias}' ({model}) answered {got} vectors for {sent} texts").format(
            alias=ALIAS, model=config.model, got=len(vectors), sent=len(texts)))
    return vectors


def _field(row: Any, name: str) -> Any:
    """A field of one of litellm's embedding rows: a dict from some providers, an object from others."""
    return row[name] if isinstance(row, dict) else getattr(row, name)


def _refusal(exc: Exception, config: ModelConfig) -> EmbedError:
    status = getattr(exc, "status_code", None)
    if refused_key(exc):
        return EmbedError(_("embedding model '{alias}' ({model}) rejected the API key ({status}); set {env} to a "
                            "valid key").format(alias=ALIAS, model=config.model, status=status,
                                                env=config.key_env() or "the key variable"))
    return EmbedError(_("embedding model '{alias}' ({model}) could not embed the texts ({what}): {said}").format(
        alias=ALIAS, model=config.model, what=status or type(exc).__name__, said=str(exc)[:300]))

