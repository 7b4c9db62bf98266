"""OpenTelemetry traces of the runs a process drives, when playbook.toml gives `[trace] otlp_endpoint`: a span per
run, step, map batch, LLM call and tool call, exported over OTLP/HTTP so a team can open a run in Jaeger, Langfuse
or Phoenix. LLM and tool spans follow the OpenTelemetry GenAI semantic conventions (`gen_ai.operation.name`,
`gen_ai.request.model`, `gen_ai.usage.input_tokens` …).

Spans are made from the run's hooks: a call's span is written when the call has ended, its start set back by the
seconds it took. Its parent is the map batch running in the same task (a context variable the batch's start sets),
else its step. A sub-playbook's run nests under the step that runs it the same way. Off (no endpoint): no hook is
added and the OpenTelemetry packages are never imported."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from contextvars import ContextVar, Token
from typing import Any

from runner.config import Project
from runner.engine.events import Hooks
from runner.errors import PlaybookError
from runner.i18n import _

FLUSH_MS = 3000  # at most this long at the end of a command to send the last spans (a collector that is down)
_step_span: ContextVar[Any] = ContextVar("playbook_step_span", default=None)  # the step this task runs in
_batch_span: ContextVar[Any] = ContextVar("playbook_batch_span", default=None)  # (run_id, step, span)


def hooks_for(project: Project) -> list[Hooks]:
    """The tracing hook for this project's runs, or none when it has no `[trace] otlp_endpoint`."""
    settings = project.settings.trace
    if not settings.otlp_endpoint:
        return []
    return [_tracer(settings.otlp_endpoint.rstrip("/"), settings.service_name)]


@functools.cache
def _tracer(endpoint: str, service: str) -> RunTraces:
    """One exporter per endpoint in a process (a worker drives many runs; each would otherwise start a thread)."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise PlaybookError(_("playbook.toml [trace] otlp_endpoint needs the OpenTelemetry packages: "
                              "pip install 'playbook-runner[trace]' (or remove otlp_endpoint)")) from None
    # not the global provider: an application embedding the runner keeps its own
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces",
                                                                    timeout=FLUSH_MS / 1000)))
    for name in ("opentelemetry.exporter.otlp.common.http", "opentelemetry.exporter.otlp.proto.http.trace_exporter"):
        logging.getLogger(name).addFilter(_ExportProblems(endpoint))
    return RunTraces(provider)


class _ExportProblems(logging.Filter):
    """The exporter's lines about a collector it cannot reach, said once per batch in the user's words: its retries
    are left out, and its failure names the endpoint and says the runs are not affected."""

    def __init__(self, endpoint: str) -> None:
        super().__init__()
        self.endpoint = endpoint

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message.startswith("Transient error"):
            return False
        if message.startswith("Failed to export"):
            record.msg, record.args = _("traces: could not send spans to {endpoint} ([trace] otlp_endpoint); the runs "
                                        "are not affected, their spans are dropped").format(
                                          endpoint=self.endpoint), None
        return True


class RunTraces(Hooks):
    def __init__(self, provider: Any) -> None:
        from opentelemetry import trace

        self.provider = provider
        self.tracer = provider.get_tracer("playbook-runner")
        self.trace = trace
        self.runs: dict[str, Any] = {}
        self.steps: dict[tuple[str, str], tuple[Any, Token[Any]]] = {}

    def _start(self, name: str, parent: Any, attributes: dict[str, Any], *, start: int | None = None,
               kind: Any = None) -> Any:
        context = self.trace.set_span_in_context(parent) if parent is not None else None
        return self.tracer.start_span(name, context=context, attributes=_clean(attributes), start_time=start,
                                      **({"kind": kind} if kind is not None else {}))

    def _parent_of_step(self, run_id: str) -> Any:
        """Its run; for a sub-playbook's step (a run with no span of its own), the map batch or the step running it
        in this task."""
        batch = _batch_span.get()
        return self.runs.get(run_id) or (batch[2] if batch is not None else None) or _step_span.get() or \
            self.runs.get(run_id.split(".")[0])

    def on_run_start(self, **event: Any) -> None:
        run_id = str(event["run_id"])
        parent = _step_span.get() if "." in run_id else None  # a sub-playbook: under the step that runs it
        self.runs[run_id] = self._start(f"playbook {event.get('playbook')}", parent, {
            "playbook.name": event.get("playbook"), "playbook.run_id": run_id,
            "playbook.resumed": bool(event.get("resumed"))})

    def on_step_start(self, **event: Any) -> None:
        run_id, step = str(event["run_id"]), str(event["step"])
        span = self._start(f"step {step}", self._parent_of_step(run_id), {
            "playbook.run_id": run_id, "playbook.step": step, "playbook.step.kind": event.get("kind"),
            "playbook.step.visit": event.get("visit")})
        self.steps[(run_id, step)] = (span, _step_span.set(span))

    def on_step_end(self, **event: Any) -> None:
        run_id, step = str(event["run_id"]), str(event["step"])
        found = self.steps.pop((run_id, step), None)
        if found is None:
            return
        span, token = found
        _reset(_step_span, token)
        span.set_attributes(_clean({"playbook.step.status": event.get("status"),
                                    "gen_ai.usage.input_tokens": event.get("tokens_in"),
                                    "gen_ai.usage.output_tokens": event.get("tokens_out"),
                                    "playbook.cost": event.get("cost"), "playbook.llm_calls": event.get("llm_calls"),
                                    "playbook.items": len(event["items"]) if "items" in event else None}))
        if event.get("status") == "failed":
            self._failed(span, event.get("error"))
        span.end()

    def on_map_batch(self, **event: Any) -> None:
        run_id, step = str(event["run_id"]), str(event["step"])
        if event.get("phase") == "start":
            parent = self.steps.get((run_id, step), (None, None))[0]
            span = self._start(f"batch {step}[{event.get('first')}]", parent, {
                "playbook.run_id": run_id, "playbook.step": step, "playbook.batch.first": event.get("first"),
                "playbook.batch.size": event.get("size")})
            _batch_span.set((run_id, step, span))  # this unit's own task: its calls read it
            return
        current = _batch_span.get()
        if current is not None and current[:2] == (run_id, step):
            span = current[2]
            if event.get("status") == "failed":
                self._failed(span, None)
            span.end()
            _batch_span.set(None)

    def _parent_of_call(self, run_id: str, step: str) -> Any:
        current = _batch_span.get()
        if current is not None and current[:2] == (run_id, step):
            return current[2]
        found = self.steps.get((run_id, step))
        return found[0] if found is not None else self._parent_of_step(run_id)

    def on_llm_call(self, **event: Any) -> None:
        run_id, step, model = str(event["run_id"]), str(event["step"]), str(event.get("model"))
        end, parent = time.time_ns(), self._parent_of_call(run_id, step)
        span = self._start(f"chat {model}", parent, {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": event.get("tokens_in"), "gen_ai.usage.output_tokens": event.get("tokens_out"),
            "playbook.cost": event.get("cost"), "playbook.cached": event.get("cached"),
            "playbook.llm_calls": event.get("calls"), "playbook.step": step},
            start=_started(parent, end, event), kind=self.trace.SpanKind.CLIENT)
        span.end(end_time=end)

    def on_tool_call(self, **event: Any) -> None:
        run_id, step, tool = str(event["run_id"]), str(event["step"]), str(event.get("tool"))
        end, parent = time.time_ns(), self._parent_of_call(run_id, step)
        span = self._start(f"execute_tool {tool}", parent, {
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool, "playbook.step": step,
            "playbook.tool.via": event.get("via"), "playbook.tool.fixture": event.get("fixture")},
            start=_started(parent, end, event))
        span.end(end_time=end)

    def on_run_end(self, **event: Any) -> None:
        run_id = str(event["run_id"])
        for key in [k for k in self.steps if k[0] == run_id]:  # a step that raised ended with its run
            span, _token = self.steps.pop(key)
            self._failed(span, event.get("error"))
            span.end()
        span = self.runs.pop(run_id, None)
        if span is None:
            return
        span.set_attributes(_clean({"playbook.status": event.get("status"),
                                    "gen_ai.usage.input_tokens": event.get("tokens_in"),
                                    "gen_ai.usage.output_tokens": event.get("tokens_out"),
                                    "playbook.cost": event.get("cost")}))
        if event.get("status") == "failed":
            self._failed(span, event.get("error"))
        span.end()

    def _failed(self, span: Any, error: Any) -> None:
        from opentelemetry.trace import Status, StatusCode

        message = error.get("message") if isinstance(error, dict) else error
        span.set_status(Status(StatusCode.ERROR, str(message)[:500] if message else None))

    async def flush(self) -> None:
        """The ended runs' spans sent before the command exits (bounded: a collector that is down costs FLUSH_MS)."""
        await asyncio.to_thread(self.provider.force_flush, FLUSH_MS)


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    """OpenTelemetry attributes take str, bool, int, float: None left out, anything else as text."""
    return {k: v if isinstance(v, str | bool | int | float) else str(v) for k, v in attributes.items()
            if v is not None}


def _reset(variable: ContextVar[Any], token: Token[Any]) -> None:
    with contextlib.suppress(ValueError):  # ended from another task than it started in: its value goes with it
        variable.reset(token)


def _started(parent: Any, end: int, event: dict[str, Any]) -> int:
    """A call's start: its end set back by the seconds it took, but never before its parent's start — the event's
    seconds are rounded, and a call begun within a millisecond of its batch would otherwise start before it."""
    start = end - int(float(event.get("seconds") or 0) * 1e9)
    parent_start = getattr(parent, "start_time", None)
    return max(start, parent_start) if isinstance(parent_start, int) else start
