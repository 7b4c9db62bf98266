"""An OTLP/HTTP trace receiver on loopback: what `[trace] otlp_endpoint` sends, decoded, so a test can check the
span tree of its runs (needs the `trace` extra: the OpenTelemetry protobuf definitions)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from runner.testing.loopback import LoopbackHTTPServer


@dataclass
class ReceivedSpan:
    name: str
    span_id: str
    parent_id: str  # "" for a root span
    trace_id: str
    attributes: dict[str, Any]
    status: str  # "UNSET", "OK" or "ERROR"
    start_ns: int
    end_ns: int
    service: str = ""


@dataclass
class OtlpReceiver:
    """`with OtlpReceiver() as receiver:` — give `receiver.url` as `[trace] otlp_endpoint`; `receiver.spans` are
    the spans received so far; `wait_for(n)` blocks until there are n (or the timeout passes)."""

    spans: list[ReceivedSpan] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self._arrived = threading.Condition()
        self._server: LoopbackHTTPServer | None = None

    def __enter__(self) -> OtlpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.received(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = LoopbackHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def received(self, body: bytes) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        found = []
        for resource in request.resource_spans:
            service = next((a.value.string_value for a in resource.resource.attributes if a.key == "service.name"), "")
            for scope in resource.scope_spans:
                for span in scope.spans:
                    found.append(ReceivedSpan(
                        span.name, span.span_id.hex(), span.parent_span_id.hex(), span.trace_id.hex(),
                        {a.key: _value(a.value) for a in span.attributes},
                        {0: "UNSET", 1: "OK", 2: "ERROR"}.get(span.status.code, "UNSET"),
                        span.start_time_unix_nano, span.end_time_unix_nano, service))
        with self._arrived:
            self.spans.extend(found)
            self._arrived.notify_all()

    def wait_for(self, count: int, timeout: float = 30.0) -> list[ReceivedSpan]:
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.spans) >= count, timeout)
            return list(self.spans)


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None
