"""Structured logs with structlog: one event per line, console-rendered in a terminal, JSON for a file or a log
shipper. Every line carries what a search needs (`event`, `run_id`, `playbook`, `step`, `worker`, seconds, tokens,
cost) and nothing secret: the run's hooks get events already redacted (events.py), and every line — the standard
library's too (Celery, uvicorn, our own warnings) — goes through the same `Redactor` with the project's secrets.

Fields, not free text: a model's calls are found with `event=llm_call model=default`, not a regular expression."""

from __future__ import annotations

import logging
import os
import socket
import sys
from typing import Any, TextIO

import structlog

from runner import observe, signals
from runner.engine.events import Hooks, Redactor

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def configure(*, json_lines: bool | None = None, level: str = "INFO", stream: TextIO | None = None,
              secrets: list[str] | None = None, worker: str | None = None) -> bool:
    """Send this process's logs to `stream` (stderr): JSON lines when `json_lines`, or when None and the stream is
    not a terminal; console lines otherwise. Adds the hook that logs every run this process drives. Returns whether
    the lines are JSON."""
    stream = stream or sys.stderr
    as_json = not stream.isatty() if json_lines is None else json_lines
    redact = Redactor(secrets or [])
    renderer = _redacted(structlog.processors.JSONRenderer(ensure_ascii=False, default=str) if as_json
                         else structlog.dev.ConsoleRenderer(colors=stream.isatty()), redact)
    shared: list[Any] = [structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
                         structlog.processors.TimeStamper(fmt="iso", utc=True), _leading]
    numeric = logging.getLevelName(level.upper())
    structlog.configure(processors=[*shared, renderer],
                        wrapper_class=structlog.make_filtering_bound_logger(numeric),
                        logger_factory=structlog.WriteLoggerFactory(file=stream), cache_logger_on_first_use=False)
    # the standard library's records (Celery, uvicorn, httpx warnings) in the same shape, through the same redaction
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer]))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_playbook", False)]:
        root.removeHandler(old)
    handler._playbook = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(numeric)
    logging.captureWarnings(True)  # a library's warning is a line like the others, not a paragraph on stderr
    for chatty in ("httpx", "httpx2", "httpcore"):  # a line per request (the run's llm_call lines say more)
        logging.getLogger(chatty).setLevel(max(numeric, logging.WARNING))
    structlog.contextvars.bind_contextvars(worker=worker or f"{socket.gethostname()}:{os.getpid()}")
    if not any(isinstance(hook, RunLog) for hook in observe.process_hooks()):  # configured again: same hook
        observe.add_hook(RunLog())
        signals.listen(_log_signal)
    return as_json


def _redacted(render: Any, redact: Redactor) -> Any:
    """The renderer, its line then scrubbed: one pass over the finished text (the forms a secret takes in JSON are
    among the Redactor's), not a walk over every key and value."""
    if not redact.secrets:
        return render

    def processor(logger: Any, name: str, event: dict[str, Any]) -> str:
        return redact(str(render(logger, name, event)))
    return processor


def _leading(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """When, how bad and what first: the fields a reader scans a line for."""
    first: dict[str, Any] = {k: event.pop(k) for k in ("timestamp", "level", "event") if k in event}
    return {**first, **event}


def _log_signal(name: str, **fields: Any) -> None:
    structlog.get_logger("playbook").info(name, **fields)


# what a line keeps of each hook event: the fields a search or a dashboard needs, not prompts or outputs
KEPT = ("run_id", "step", "visit", "kind", "status", "seconds", "model", "cached", "calls", "tokens_in",
        "tokens_out", "cost", "tool", "action", "by", "chunk", "first", "end", "worker", "error", "notice", "done",
        "total", "playbook", "fixture", "title", "resumed")


class RunLog(Hooks):
    """One log line per run event, with the run's playbook on every line of the run."""

    def __init__(self) -> None:
        self.log = structlog.get_logger("playbook.run")
        self.playbooks = observe.RunPlaybooks()

    def _line(self, event_name: str, event: dict[str, Any], level: str = "info") -> None:
        fields = {k: v for k, v in event.items() if k in KEPT and v is not None}
        if "playbook" not in fields and (playbook := self.playbooks.of(event)):
            fields["playbook"] = playbook
        if isinstance(fields.get("error"), dict):  # a step's error record: its message is what a search wants
            fields["error"] = fields["error"].get("message")
        getattr(self.log, level)(event_name, **fields)

    def on_run_start(self, **event: Any) -> None:
        self.playbooks.started(event)
        self._line("run_start", event)

    def on_step_start(self, **event: Any) -> None:
        self._line("step_start", event, "debug")

    def on_step_end(self, **event: Any) -> None:
        self._line("step_end", event, "warning" if event.get("status") == "failed" else "info")

    def on_llm_call(self, **event: Any) -> None:
        self._line("llm_call", event)

    def on_tool_call(self, **event: Any) -> None:
        self._line("tool_call", event)

    def on_map_chunk(self, **event: Any) -> None:
        self._line("map_chunk", event)

    def on_approval(self, **event: Any) -> None:
        self._line("approval", event)

    def on_notice(self, **event: Any) -> None:
        self._line("notice", event, "warning")

    def on_run_end(self, **event: Any) -> None:
        self._line("run_end", event, "error" if event.get("status") == "failed" else "info")
        self.playbooks.ended(event)
