"""Every model not served by an OpenAI-compatible `api_base` nor embedded: through litellm, the only module that
imports it (seconds of import and 160 MB, so lazily, and off the event loop)."""

from __future__ import annotations

import asyncio
import os
import threading
from functools import lru_cache
from typing import Any

from runner.config import LOCAL, ModelConfig, ProjectFile
from runner.models import openai_compatible
from runner.models.provider import (
    ProviderReply,
    ProviderRequest,
    RemoteProvider,
    openai_params,
    tool_calls_of,
    usage_of,
)

_READY = threading.Event()  # set once `import litellm` has finished (in whichever thread ran it)


def litellm_module() -> Any:
    """litellm, imported once and set up (its cost map read locally, no debug banner, unknown parameters dropped)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.drop_params = True
    _READY.set()
    return litellm


@lru_cache(maxsize=256)
def _supports_schema(model: str) -> bool:
    try:
        return bool(litellm_module().supports_response_schema(model=model))
    except Exception:
        return False


class Litellm(RemoteProvider):
    name = "litellm"
    shared_limits = True

    def handles(self, config: ModelConfig) -> bool:
        return config.model != LOCAL and not openai_compatible.handles(config)

    def preload(self) -> None:
        """Start importing litellm (seconds of CPU) in a background thread, as soon as a run that will call it
        starts: loading files, dedupe and clustering overlap it instead of the first call waiting."""
        if _READY.is_set() or any(t.name == "litellm-import" for t in threading.enumerate()):
            return
        threading.Thread(target=litellm_module, name="litellm-import", daemon=True).start()

    async def ready(self, config: ModelConfig) -> None:
        if not _READY.is_set():  # waits on the import lock if the preload thread is mid-import
            await asyncio.to_thread(litellm_module)

    async def call(self, config: ModelConfig, api_key: str, request: ProviderRequest,
                   settings: ProjectFile) -> ProviderReply:
        litellm = litellm_module()
        # litellm also knows what whole providers support, beyond its model table
        kwargs = {"model": config.model, "num_retries": 0, "max_retries": 0,
                  **openai_params(request, _supports_schema(config.model))}
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
        return ProviderReply(message.content or "", tool_calls_of(message), *usage_of(response))
