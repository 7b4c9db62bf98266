"""A fake OpenAI-compatible server on loopback.

    with FakeLLMServer() as server:          # or the `fake_llm` pytest fixture (runner/pytest_plugin.py)
        server.add_rule("审核", {"themes": []})
        ... PLAYBOOK_MODEL_DEFAULT=openai/fake PLAYBOOK_API_BASE_DEFAULT=server.url ...

Replies are matched on the prompt (regex, first match wins); without a match, a request that carries
a JSON Schema gets a deterministic instance of it, others get "ok". Latency and faults (429 with
Retry-After, 500, hangs past the client's timeout, malformed or truncated JSON, 401) are injected
at set rates; every request is logged. Command line: `python -m runner.testing --port 8765`.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from runner.testing.loopback import LoopbackHTTPServer

Reply = str | dict[str, Any] | list[Any] | Callable[[dict[str, Any]], Any]


@dataclass
class Rule:
    pattern: str
    reply: Reply
    times: int | None = None  # answer this many matching requests, then stop matching
    used: int = 0
    cycle: list[Any] | None = None  # answer with these in turn (a flaky model or judge), instead of `reply`
    delay: float = 0.0  # seconds this rule's replies wait: one call hangs from its first byte, no race


@dataclass
class Faults:
    rate_limit: float = 0.0  # share of requests answered 429 with Retry-After
    server_error: float = 0.0  # share answered 500
    malformed: float = 0.0  # share answered 200 with text that is not JSON
    truncated: float = 0.0  # share answered 200 with JSON cut in half
    hang: float = 0.0  # share that sleep `hang_seconds` before answering
    hang_seconds: float = 30.0
    retry_after: float = 0.05
    auth_error: bool = False  # every request 401
    rpm: int = 0  # a provider's rate limit: a request beyond this many answered in the last `rpm_window` s → 429
    rpm_window: float = 60.0
    sequence: list[int | str] = field(default_factory=list)  # outcomes of the first requests, in
    # order: 429, 500, 400, "hang", "malformed", "truncated" or 200


@dataclass
class FakeLLMServer:
    rules: list[Rule] = field(default_factory=list)
    latency: float = 0.0
    faults: Faults = field(default_factory=Faults)
    seed: int = 0
    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    embedding_dims: int = 1024  # numbers per /embeddings vector (a request's `dimensions` wins)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(self.seed)
        self._httpd: LoopbackHTTPServer | None = None

    # lifecycle
    def start(self) -> FakeLLMServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like a real provider

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server._send(self, 200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                server._handle(self, body, embeddings=self.path.rstrip("/").endswith("/embeddings"))

        self._httpd = LoopbackHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def env(self, alias: str = "default") -> dict[str, str]:
        """Environment variables that point a model alias at this server."""
        upper = alias.upper()
        return {f"PLAYBOOK_MODEL_{upper}": "openai/fake", f"PLAYBOOK_API_BASE_{upper}": self.url,
                f"PLAYBOOK_API_KEY_ENV_{upper}": "FAKE_LLM_API_KEY"}

    def toml(self, alias: str = "default", **extra: Any) -> str:
        lines = [f"[models.{alias}]", 'model = "openai/fake"', f'api_base = "{self.url}"',
                 'api_key_env = "FAKE_LLM_API_KEY"', "structured_output = true"]
        lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
        return "\n".join(lines) + "\n"

    def add_rule(self, pattern: str, reply: Reply, times: int | None = None, delay: float = 0.0) -> None:
        self.rules.append(Rule(pattern, reply, times, delay=delay))

    # request handling
    def _handle(self, handler: BaseHTTPRequestHandler, body: dict[str, Any], *, embeddings: bool = False) -> None:
        messages = body.get("messages", [])
        texts = [body["input"]] if isinstance(body.get("input"), str) else list(body.get("input") or [])
        # the last user message (a step with only a system message: that message), what rules match against
        prompt = "\n".join(map(str, texts)) if embeddings else next(
            (_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"),
            _text(messages[-1].get("content")) if messages else "")
        entry = {"time": time.time(), "model": body.get("model"), "messages": messages, "prompt": prompt,
                 "response_format": body.get("response_format"), "status": 200, "body": body,
                 "embeddings": embeddings,
                 "tools": [t.get("function", {}).get("name") for t in body.get("tools") or []]}
        with self._lock:
            self.requests.append(entry)
            roll = self._rng.random()
            scripted = self.faults.sequence.pop(0) if self.faults.sequence else None
            if self.faults.rpm and scripted is None:
                answered = [r["time"] for r in self.requests if r["status"] != 429
                            and r["time"] > entry["time"] - self.faults.rpm_window and r is not entry]
                scripted = 429 if len(answered) >= self.faults.rpm else None
        if self.latency:
            time.sleep(self.latency)
        f = self.faults
        if f.auth_error:
            entry["status"] = 401
            key = handler.headers.get("authorization", "").removeprefix("Bearer ")
            return self._send(handler, 401, {"error": {"message": f"Incorrect API key provided: {key}",
                                                       "type": "invalid_request_error"}})
        edges = [f.rate_limit, f.server_error, f.hang, f.malformed, f.truncated]
        bucket = next((i for i, edge in enumerate(_cumulative(edges)) if roll < edge), None)
        if scripted is not None:
            bucket = {429: 0, 500: 1, "hang": 2, "malformed": 3, "truncated": 4}.get(scripted)
            if scripted == 400:
                entry["status"] = 400
                return self._send(handler, 400, {"error": {"message": "bad request: unsupported "
                                                           "parameter", "type": "invalid_request_error"}})
        if bucket == 0:
            entry["status"] = 429
            return self._send(handler, 429, {"error": {"message": "rate limited", "type": "rate_limit"}},
                              {"Retry-After": str(f.retry_after)})
        if bucket == 1:
            entry["status"] = 500
            return self._send(handler, 500, {"error": {"message": "internal error", "type": "server"}})
        if bucket == 2:
            time.sleep(f.hang_seconds)
        if embeddings:
            return self._send(handler, 200, _embeddings(body, texts, self.embedding_dims))
        content, tool_calls = self._reply(body, prompt)
        entry["reply"] = content
        if bucket == 3:
            content, entry["status"] = "抱歉，我无法按格式回答 {not json", "malformed"
        elif bucket == 4:
            content, entry["status"] = content[: max(1, len(content) // 2)], "truncated"
        tokens_in = sum(len(str(m.get("content", ""))) for m in messages) // 2 + 1
        tokens_out = len(content) // 2 + 1
        self._send(handler, 200, {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content,
                                                 **({"tool_calls": tool_calls} if tool_calls else {})},
                         "finish_reason": "tool_calls" if tool_calls else "stop"}],
            "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out,
                      "total_tokens": tokens_in + tokens_out}})

    def _reply(self, body: dict[str, Any], prompt: str) -> tuple[str, list[dict[str, Any]]]:
        """(content, tool_calls). A rule's reply {"tool_calls": [{"name", "arguments"}]} calls tools."""
        text = self._reply_text(body, prompt)
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return text, []
        if isinstance(data, dict) and isinstance(data.get("tool_calls"), list):
            calls = [{"id": f"call_{len(self.requests)}_{i}", "type": "function",
                      "function": {"name": c["name"], "arguments": json.dumps(c.get("arguments", {}),
                                                                              ensure_ascii=False)}}
                     for i, c in enumerate(data["tool_calls"])]
            return data.get("content") or "", calls
        return text, []

    def _reply_text(self, body: dict[str, Any], prompt: str) -> str:
        with self._lock:
            rule = next((r for r in self.rules if (r.times is None or r.used < r.times)
                         and re.search(r.pattern, prompt)), None)
            if rule is not None:
                turn = rule.used
                rule.used += 1
        if rule is not None:
            if rule.delay:
                time.sleep(rule.delay)
            reply = rule.cycle[turn % len(rule.cycle)] if rule.cycle else rule.reply
            reply = reply(body) if callable(reply) else reply
            return reply if isinstance(reply, str) else json.dumps(reply, ensure_ascii=False)
        schema = _schema_of(body)
        if schema is not None:
            return json.dumps(instance_of(schema, seed=prompt), ensure_ascii=False)
        return "ok"

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any],
              headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        try:
            handler.send_response(status)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(data)))
            for k, v in (headers or {}).items():
                handler.send_header(k, v)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a hang past its timeout)

    def prompts(self, pattern: str = "") -> list[str]:
        return [r["prompt"] for r in self.requests if re.search(pattern, r["prompt"])]


def text_vector(text: str, dims: int = 1024) -> list[float]:
    """The fake server's embedding of a text: its Chinese characters and character pairs and its Latin words,
    each hashed to one of `dims` signed slots, length 1. Deterministic and lexical (texts sharing words and
    characters point the same way), so retrieval tests and benchmarks have a dense ranker that is not BM25."""
    features: list[tuple[str, float]] = []
    for run in re.findall(r"[\u4e00-\u9fff]+|[a-z0-9]+", text.lower()):
        if run[0].isascii():
            features.append((run, 1.0))
        else:
            features += [(c, 0.5) for c in run] + [(run[i:i + 2], 1.0) for i in range(len(run) - 1)]
    vector = [0.0] * dims
    for feature, weight in features:
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        vector[int.from_bytes(digest[:4], "little") % dims] += weight if digest[4] & 1 else -weight
    norm = sum(v * v for v in vector) ** 0.5 or 1.0
    return [v / norm for v in vector]


def _embeddings(body: dict[str, Any], texts: list[Any], dims: int) -> dict[str, Any]:
    """An OpenAI embeddings answer; base64 float32 when asked (the openai SDK asks so by default)."""
    import base64
    import struct

    dims = int(body.get("dimensions") or dims)
    data = []
    for i, text in enumerate(texts):
        vector = text_vector(str(text), dims)
        encoded: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() \
            if body.get("encoding_format") == "base64" else vector
        data.append({"object": "embedding", "index": i, "embedding": encoded})
    tokens = sum(len(str(t)) for t in texts) // 2 + 1
    return {"object": "list", "model": body.get("model", "fake"), "data": data,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _text(content: Any) -> str:
    """A message's words: a string as it is, the text parts of a list of content parts (images left out)."""
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return str(content)


def _cumulative(values: list[float]) -> Iterator[float]:
    total = 0.0
    for v in values:
        total += v
        yield total if v > 0 else -1.0


def _schema_of(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON Schema a request asks for: in response_format, or after the runner's instruction."""
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        schema = fmt.get("json_schema", {}).get("schema")
        return schema if isinstance(schema, dict) else None
    for message in reversed(body.get("messages", [])):
        text = str(message.get("content", ""))
        marker = text.rfind("JSON Schema：")
        if marker >= 0:
            try:
                found = json.loads(text[marker + len("JSON Schema："):].strip())
            except json.JSONDecodeError:
                return None
            return found if isinstance(found, dict) else None
    return None


def instance_of(schema: dict[str, Any], seed: str = "", root: dict[str, Any] | None = None,
                position: int = 0) -> Any:
    """A deterministic value valid for `schema`: arrays get minItems items; `index` enums count up."""
    root = root or schema
    if "$ref" in schema:
        name = schema["$ref"].split("/")[-1]
        return instance_of(root.get("$defs", {}).get(name, {}), seed, root, position)
    if "anyOf" in schema:
        first = next((s for s in schema["anyOf"] if s.get("type") != "null"), schema["anyOf"][0])
        return instance_of(first, seed, root, position)
    digest = int(hashlib.md5(f"{seed}|{position}".encode()).hexdigest(), 16)
    if "enum" in schema:
        return schema["enum"][digest % len(schema["enum"])]
    kind = schema.get("type")
    if kind == "object":
        out = {}
        for key, sub in schema.get("properties", {}).items():
            if key == "index" and "enum" in sub:
                out[key] = sub["enum"][position % len(sub["enum"])]
            else:
                out[key] = instance_of(sub, f"{seed}|{key}", root, position)
        return out
    if kind == "array":
        count = max(schema.get("minItems", 2), 0)
        count = min(count, schema["maxItems"]) if "maxItems" in schema else count
        return [instance_of(schema.get("items", {}), seed, root, i) for i in range(count)]
    if kind in ("integer", "number"):  # within the schema's bounds, when it has them
        low, high = schema.get("minimum"), schema.get("maximum")
        if kind == "integer":
            low, high = int(low if low is not None else 1), int(high if high is not None else (low or 1) + 9)
            return low + digest % max(1, high - low + 1)
        low, high = float(low if low is not None else 0.0), float(high if high is not None else 100.0)
        return round(low + (digest % 1000) / 1000 * (high - low), 1)
    if kind == "boolean":
        return digest % 2 == 0
    text = f"示例{digest % 97}"
    return text[:schema["maxLength"]] if "maxLength" in schema else text


def load_script(path: Path) -> FakeLLMServer:
    """A server from a YAML script: {rules: [{match, reply | replies (answered in turn), times}], latency,
    faults: {...}}."""
    from runner.dsl.yaml_loader import safe_load

    data = safe_load(path.read_text(encoding="utf-8"), str(path)) or {}
    rules = [Rule(r["match"], r.get("reply", ""), r.get("times"), cycle=r.get("replies"))
             for r in data.get("rules") or []]
    return FakeLLMServer(rules=rules, latency=float(data.get("latency", 0)),
                         faults=Faults(**data.get("faults", {})), seed=int(data.get("seed", 0)))


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m runner.testing", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--script", type=Path, help="YAML file of rules and faults")
    args = parser.parse_args(argv)
    server = load_script(args.script) if args.script else FakeLLMServer()
    server.port, server.latency = args.port, args.latency or server.latency
    server.start()
    print(f"fake OpenAI-compatible server on {server.url} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
