"""Lifecycle hooks. Console progress, the events.jsonl file and eval capture are hooks, not inline code.

Every hook method takes keyword arguments only, so a hook may accept just the ones it needs via
**_ and new fields never break old hooks.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
import time
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote, quote_plus

from runner.wording import readable


class Hooks:
    """Base class: every method is a no-op. Override the ones you need."""

    def on_run_start(self, **event: Any) -> None: ...
    def on_step_start(self, **event: Any) -> None: ...
    def on_step_end(self, **event: Any) -> None: ...
    def on_llm_call(self, **event: Any) -> None: ...
    def on_tool_call(self, **event: Any) -> None: ...
    def on_map_progress(self, **event: Any) -> None: ...
    def on_approval(self, **event: Any) -> None: ...
    def on_run_end(self, **event: Any) -> None: ...
    def on_map_chunk(self, **event: Any) -> None: ...
    def on_notice(self, **event: Any) -> None: ...  # something the user should hear now: `notice`, `step`
    # a map's unit that groups work (an LLM batch of items, or an item whose sub-steps run) starts
    # (`phase="start"`) and ends (`phase="end"`, `status`), in the task that runs it: sent only when a hook
    # overrides it (traces), as units can be many
    def on_map_batch(self, **event: Any) -> None: ...

    async def flush(self) -> None:
        """Wait for work the hook set off and has not finished (a card being sent); before a process exits."""

HOOK_NAMES = ("on_run_start", "on_step_start", "on_step_end", "on_llm_call", "on_tool_call",
              "on_map_progress", "on_approval", "on_run_end", "on_map_chunk")


class HookList(Hooks):
    """Fans each event out to several hooks; a failing hook never fails the run."""

    def __init__(self, hooks: list[Hooks], redact: Redactor | None = None) -> None:
        self.hooks = hooks
        self.redact = redact
        self.errors: list[str] = []
        self.wants_batches = any(getattr(type(h), "on_map_batch", None) not in (None, Hooks.on_map_batch)
                                 for h in hooks)

    def emit(self, name: str, **event: Any) -> None:
        if self.redact is not None and self.redact.secrets:  # one redaction for every hook: console, files, cards
            event = self.redact.value(event)
        for hook in self.hooks:
            try:
                getattr(hook, name)(**event)
            except Exception as exc:  # a hook's bug must not stop the playbook
                self.errors.append(f"{type(hook).__name__}.{name}: {exc}")

    def on_run_start(self, **event: Any) -> None:
        self.emit("on_run_start", **event)

    def on_step_start(self, **event: Any) -> None:
        self.emit("on_step_start", **event)

    def on_step_end(self, **event: Any) -> None:
        self.emit("on_step_end", **event)

    def on_llm_call(self, **event: Any) -> None:
        self.emit("on_llm_call", **event)

    def on_tool_call(self, **event: Any) -> None:
        self.emit("on_tool_call", **event)

    def on_map_progress(self, **event: Any) -> None:
        self.emit("on_map_progress", **event)

    def on_approval(self, **event: Any) -> None:
        self.emit("on_approval", **event)

    def on_run_end(self, **event: Any) -> None:
        self.emit("on_run_end", **event)

    def on_map_chunk(self, **event: Any) -> None:
        self.emit("on_map_chunk", **event)

    def on_notice(self, **event: Any) -> None:
        self.emit("on_notice", **event)

    def on_map_batch(self, **event: Any) -> None:
        if self.wants_batches:
            self.emit("on_map_batch", **event)

    def close(self) -> None:
        """Close the files the hooks hold open (a worker process outlives the runs it works on)."""
        for hook in self.hooks:
            if isinstance(hook, EventsFile):
                hook.close()


class Redactor:
    """Replaces secret values (API keys, `secrets.*`) wherever they would be written or shown — as written, and in
    the forms they travel in: URL-encoded (a key in a query string), JSON-escaped, and base64 (a Basic
    Authorization header, a token inside a cookie), whatever bytes came before it."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = sorted({form for s in secrets if s for form in secret_forms(s)}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def value(self, value: Any) -> Any:
        """Any JSON-like value with every string scrubbed (keys included); other values unchanged."""
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self(k) if isinstance(k, str) else k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


def secret_forms(secret: str) -> set[str]:
    """`secret` and the encodings it may appear in; encoded forms shorter than 8 characters are left out (they
    would match ordinary text)."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret, safe=""), json.dumps(secret)[1:-1],
             json.dumps(secret, ensure_ascii=False)[1:-1]}
    raw = secret.encode("utf-8")
    for offset in range(3):  # base64 of the secret after 0, 1 or 2 other bytes: its own characters in the middle
        encoded = base64.b64encode(b"\0" * offset + raw).decode("ascii")
        own = encoded[(offset * 4 + 2) // 3:(offset + len(raw)) // 3 * 4]
        forms |= {own, own.replace("+", "-").replace("/", "_")}
    return {form for form in forms if form == secret or len(form) >= 8}


class EventsFile(Hooks):
    """Appends every event as one JSON line to `<run dir>/events.jsonl`.

    The lines of one turn of the event loop reach the file together, at the end of that turn (as the journal
    writes of the turn are committed together, runner/store/batch_writer.py): a step's start, call and end were
    three system calls. A kill -9 loses at most the turn in hand; outside a running loop every line is written
    at once."""

    def __init__(self, path: Path, redact: Redactor) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.redact = redact
        self._file: TextIO | None = None
        self._flush_due = False

    def _write(self, kind: str, event: dict[str, Any]) -> None:
        record = {"ts": round(time.time(), 3), "event": kind, **event}
        line = self.redact(json.dumps(record, ensure_ascii=False, default=str))
        if self._file is None:
            self._file = self.path.open("a", encoding="utf-8")
        self._file.write(line + "\n")
        if self._flush_due:
            return
        try:
            asyncio.get_running_loop().call_soon(self._flush)
        except RuntimeError:  # no running loop (a command's own events, a worker thread): now
            self._file.flush()
            return
        self._flush_due = True
        with _pending_lock:
            _pending.add(self)

    def _flush(self) -> None:
        self._flush_due = False
        with _pending_lock:
            _pending.discard(self)
        if self._file is not None:
            with contextlib.suppress(OSError, ValueError):  # a full disk: the next line tries again
                self._file.flush()

    def close(self) -> None:
        self._flush()
        if self._file is not None:
            self._file.close()
            self._file = None

    def on_run_start(self, **event: Any) -> None:
        self._write("run_start", event)

    def on_step_start(self, **event: Any) -> None:
        self._write("step_start", event)

    def on_step_end(self, **event: Any) -> None:
        self._write("step_end", brief(event))

    def on_llm_call(self, **event: Any) -> None:
        self._write("llm_call", brief(event))

    def on_tool_call(self, **event: Any) -> None:
        self._write("tool_call", brief(event))

    def on_map_progress(self, **event: Any) -> None:
        if event.get("done") == event.get("total") or event.get("batch_done") or event.get("notice"):
            self._write("map_progress", event)

    def on_approval(self, **event: Any) -> None:
        self._write("approval", event)

    def on_run_end(self, **event: Any) -> None:
        self._write("run_end", event)
        self.close()

    def on_map_chunk(self, **event: Any) -> None:
        self._write("map_chunk", event)  # which worker ran which part of a distributed map

    def on_notice(self, **event: Any) -> None:
        self._write("notice", event)


# events files with lines waiting for the end of their loop turn; a process leaving by os._exit (the command's
# fast exit, a Ctrl-C) writes them out first: flush_pending
_pending: set[EventsFile] = set()
_pending_lock = threading.Lock()


def flush_pending() -> None:
    """Write out every events line still waiting for its loop turn to end."""
    with _pending_lock:
        waiting = list(_pending)
    for events in waiting:
        events._flush()


def brief(event: dict[str, Any], limit: int = 2000) -> dict[str, Any]:
    """Step outputs, tool arguments and prompts can be huge (a 10,000-item map); the journal has the
    results, the event a preview."""
    out = dict(event)
    for name in ("output", "items", "args", "prompt"):
        if name in out:
            value = out[name]
            if isinstance(value, str):
                out[name] = value if len(value) <= limit else value[:limit] + "…"
            elif json_longer_than(value, limit) or \
                    len(json.dumps(value, ensure_ascii=False, default=str)) > limit:
                out[name] = readable(value, limit)  # read by people (the run page): formatted, not cut-off JSON
    return out


def json_longer_than(value: Any, limit: int) -> bool:
    """Whether `value`'s JSON surely has more than `limit` characters — found by walking only as far as the
    limit (at most a few more characters than the JSON, never its whole text: a 200,000-row output is not
    encoded to learn it is long). False means "not sure": short, or just around the limit."""
    left = limit

    def spent(v: Any) -> bool:
        nonlocal left
        if isinstance(v, dict):
            left -= 2
            for k, x in v.items():
                left -= len(str(k)) + 4
                if left < 0 or spent(x):
                    return True
        elif isinstance(v, list | tuple):
            left -= 2
            for x in v:
                left -= 1
                if left < 0 or spent(x):
                    return True
        else:
            left -= len(v) + 2 if isinstance(v, str) else len(str(v))
        return left < 0

    return spent(value)


def position(events_path: Path, run_id: str, tail_bytes: int = 256 * 1024) -> dict[str, Any] | None:
    """Where a run got to, from the end of its events file: the step it was in (started, not ended) — or the
    last one it finished — with the map items done of total when that step is a map. Reads only the tail,
    so a 100,000-item run's file costs no more than a small one's."""
    try:
        with events_path.open("rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - tail_bytes))
            lines = handle.read().decode("utf-8", errors="replace").splitlines()[1 if size > tail_bytes else 0:]
    except OSError:
        return None
    found: dict[str, Any] | None = None
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:  # a line cut by a kill -9
            continue
        if event.get("run_id", run_id) != run_id:
            continue
        kind, step = event.get("event"), event.get("step")
        if kind == "step_start":
            found = {"step": step, "finished": False}
        elif kind == "step_end" and step is not None:
            found = {"step": step, "finished": True}
        elif kind == "map_progress" and found is not None and found["step"] == step:
            found.update(done=event.get("done"), total=event.get("total"))
    return found
