"""Calls to an OpenAI-compatible server named by `api_base` (vLLM, Ollama, one-api gateways, DeepSeek or
Qwen in OpenAI mode, the fake server), through the `openai` SDK that litellm itself uses for them.

Why not litellm.acompletion for these: per call it hops to a thread pool to run its synchronous
`completion()`, computes the cost inside its logging and builds its own response objects — about twice
the CPU of the SDK call it wraps (`benchmarks/bench_llm_path.py`), with no setting that turns those off.
Every other provider still goes through litellm. Prices and structured-output support come from litellm's
own model table, read without importing litellm (runner/models/model_table.py): a run that only talks to such
servers never pays litellm's seconds of import.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import sys
import threading
from typing import Any

from runner.config import ModelConfig, ProjectFile
from runner.loop_local import loop_local
from runner.models import model_table
from runner.models.client_shards import ClientShards
from runner.models.provider import (
    ProviderReply,
    ProviderRequest,
    RemoteProvider,
    openai_params,
    tool_calls_of,
    usage_of,
)

PREFIX = "openai/"


def handles(config: ModelConfig) -> bool:
    """A model litellm would send to an OpenAI-compatible endpoint the playbook names itself."""
    return bool(config.api_base) and config.model.startswith(PREFIX)


def preload() -> None:
    """Import the SDK (about half a second) and read the model table in a background thread while the run's
    first steps go, rather than at its first call."""
    def load() -> None:
        importlib.import_module("openai")
        model_table.load()

    if "openai" not in sys.modules and not any(t.name == "openai-import" for t in threading.enumerate()):
        threading.Thread(target=load, name="openai-import", daemon=True).start()


def _clients(api_base: str, api_key: str) -> ClientShards:
    """The pooled clients of an endpoint and key on this event loop (an httpx pool belongs to the loop it started
    on), shared by every step and run the loop drives."""
    def make() -> Any:
        from openai import AsyncOpenAI, DefaultAsyncHttpxClient

        context = _tls_context()
        http = DefaultAsyncHttpxClient(verify=context) if context is not None else None  # the SDK's own defaults
        return AsyncOpenAI(base_url=api_base, api_key=api_key, max_retries=0, http_client=http)  # retries are ours
    return loop_local("openai", (api_base, api_key), lambda: ClientShards(make))


@functools.cache
def _tls_context() -> Any:
    """One TLS context for every client of the process, made as the SDK's HTTP library makes its default (the
    certificate bundle, SSL_CERT_FILE and SSL_CERT_DIR honoured). Each client made its own: 30 ms of CPU reading
    the bundle, for every run a worker drives (each on an event loop of its own, so with clients of its own). None:
    a library without `create_ssl_context` (httpx before 0.28), whose clients then make their own as before."""
    from openai import DefaultAsyncHttpxClient

    library = importlib.import_module(DefaultAsyncHttpxClient.__mro__[1].__module__.split(".")[0])  # httpx or httpx2
    create = getattr(library, "create_ssl_context", None)
    return create() if create is not None else None


class OpenAICompatible(RemoteProvider):
    name = "openai-compatible"
    shared_limits = True

    def handles(self, config: ModelConfig) -> bool:
        return handles(config)

    def preload(self) -> None:
        preload()

    async def ready(self, config: ModelConfig) -> None:
        if "openai" not in sys.modules:
            await asyncio.to_thread(importlib.import_module, "openai")
        model_table.facts(config.model)  # read once, cached

    async def call(self, config: ModelConfig, api_key: str, request: ProviderRequest,
                   settings: ProjectFile) -> ProviderReply:
        """One chat completion; the SDK's exceptions carry `status_code` and the response headers the client
        classifies."""
        assert config.api_base is not None
        params = openai_params(request, model_table.facts(config.model).supports_response_schema)
        with _clients(config.api_base, api_key).lease() as client:
            response = await client.chat.completions.create(model=config.model.removeprefix(PREFIX), **params)
        message = response.choices[0].message
        return ProviderReply(message.content or "", tool_calls_of(message), *usage_of(response))


async def embeddings(config: ModelConfig, api_key: str, texts: list[str], timeout: float) -> tuple[list[list[float]],
                                                                                                  int]:
    """Vectors for `texts` in order, and the input tokens the server counted."""
    assert config.api_base is not None
    with _clients(config.api_base, api_key).lease() as client:
        response = await client.embeddings.create(model=config.model.removeprefix(PREFIX), input=texts,
                                                  timeout=timeout)
    rows = sorted(response.data, key=lambda row: row.index)
    return [list(row.embedding) for row in rows], int(getattr(response.usage, "prompt_tokens", 0) or 0)
