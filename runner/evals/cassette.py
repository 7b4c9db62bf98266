"""Cassettes: every LLM reply of an eval run, recorded as reviewable YAML and served back with no network.

An entry is keyed by the request as sent (alias, messages, temperature, max_tokens, schema, tools) and filed
under its case and repeat; replay serves a case's n-th identical request its n-th recorded reply. A request
the cassette lacks fails the step, naming it and showing how it differs from the closest recorded request.
"""

from __future__ import annotations

import collections
import difflib
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import yaml

from runner.dsl.yaml_loader import safe_load
from runner.errors import RunError
from runner.i18n import _
from runner.models.llm import LlmCall, LlmReply, message_text

Mode = Literal["record", "replay"]


class CassetteError(ValueError):
    pass


class _LiteralDumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_LiteralDumper.add_representer(str, _str)


class Cassette:
    def __init__(self, path: Path, mode: Mode) -> None:
        self.path = path
        self.mode = mode
        self.entries: list[dict[str, Any]] = []
        self.header: dict[str, Any] = {}
        if mode == "replay":
            self._load()
        self._index: dict[tuple[str, int, str], list[dict[str, Any]]] = collections.defaultdict(list)
        self._by_key: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        for entry in self.entries:
            self._index[(entry["case"], entry.get("repeat", 0), entry["key"])].append(entry)
            self._by_key[entry["key"]].append(entry)

    def _load(self) -> None:
        if not self.path.is_file():
            raise CassetteError(_("no cassette {path}; record one with `playbook eval <suite> --record`").format(
                                    path=self.path))
        try:
            data = safe_load(self.path.read_text(encoding="utf-8"), str(self.path)) or {}
        except yaml.YAMLError as exc:
            raise CassetteError(_("{path}: not valid YAML: {exc}").format(path=self.path, exc=exc)) from None
        if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
            raise CassetteError(_("{path}: a cassette is a mapping with `entries:`").format(path=self.path))
        self.header = {k: v for k, v in data.items() if k != "entries"}
        self.entries = data["entries"]
        for number, entry in enumerate(self.entries):
            if not isinstance(entry, dict) or not {"case", "key", "step", "reply"} <= set(entry):
                raise CassetteError(_("{path}: entry {number} lacks case, key, step or reply").format(
                                        path=self.path, number=number))

    def for_case(self, case: str, repeat: int) -> CaseReplies:
        return CaseReplies(self, case, repeat)

    def save(self, header: dict[str, Any], case_order: list[str], recorded: set[str]) -> None:
        """Write the entries of the cases just recorded; entries of the suite's other cases (a `--case` run)
        stay as they were."""
        order = {c: i for i, c in enumerate(case_order)}
        kept = []
        if self.path.is_file():
            old = safe_load(self.path.read_text(encoding="utf-8"), str(self.path)) or {}
            kept = [e for e in old.get("entries") or [] if isinstance(e, dict) and e.get("case") not in recorded]
        for number, entry in enumerate(kept):
            entry["seq"] = -len(kept) + number
        entries = sorted([*kept, *self.entries], key=lambda e: (order.get(e["case"], len(order)), e.get("repeat", 0),
                                                               e["seq"]))
        for entry in entries:
            entry.pop("seq", None)
        document = {**header, "recorded_at": time.strftime("%Y-%m-%d %H:%M:%S"), "entries": entries}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = yaml.dump(document, Dumper=_LiteralDumper, allow_unicode=True, sort_keys=False, width=120)
        self.path.write_text(text, encoding="utf-8")

    def lookup(self, case: str, repeat: int, key: str, occurrence: int) -> dict[str, Any] | None:
        found = self._index.get((case, repeat, key)) or self._index.get((case, 0, key)) or self._by_key.get(key)
        return found[min(occurrence, len(found) - 1)] if found else None

    def closest(self, case: str, call: LlmCall) -> dict[str, Any] | None:
        same_step = [e for e in self.entries if e["step"] == call.step]
        pool = [e for e in same_step if e["case"] == case] or same_step
        if not pool:
            return None
        wanted = _request_text(request_of(call))
        return max(pool, key=lambda e: difflib.SequenceMatcher(None, _request_text(e.get("request", {}))[:4000],
                                                               wanted[:4000]).quick_ratio())


class CaseReplies:
    """The cassette as one case's run sees it (a ReplySource for the LLM client)."""

    def __init__(self, cassette: Cassette, case: str, repeat: int) -> None:
        self.cassette, self.case, self.repeat = cassette, case, repeat
        self.seen: collections.Counter[str] = collections.Counter()

    async def reply(self, call: LlmCall, fetch: Callable[[], Awaitable[LlmReply]]) -> LlmReply:
        key = call.key()
        occurrence = self.seen[key]
        self.seen[key] += 1
        if self.cassette.mode == "record":
            reply = await fetch()
            self.cassette.entries.append({
                "case": self.case, "repeat": self.repeat, "step": call.step, "alias": call.alias,
                "model": call.model, "key": key, "seq": len(self.cassette.entries),
                "request": request_of(call), "reply": _reply_doc(reply)})
            return reply
        entry = self.cassette.lookup(self.case, self.repeat, key, occurrence)
        if entry is None:
            raise RunError(self._missing(call), step=call.step)
        return _reply_of(entry["reply"])

    def _missing(self, call: LlmCall) -> str:
        path = self.cassette.path
        message = (_("the cassette {path} has no recorded reply for this request (case '{case}'); the prompt, "
                     "schema or model alias changed since it was recorded — re-record with `playbook eval <suite> "
                     "--record`").format(path=path, case=self.case))
        near = self.cassette.closest(self.case, call)
        if near is None:
            return _("{message}. No request of step '{step}' was recorded at all.").format(
                       message=message, step=call.step)
        diff = difflib.unified_diff(_request_text(near.get("request", {})).splitlines(),
                                    _request_text(request_of(call)).splitlines(),
                                    "recorded", "now", n=1, lineterm="")
        lines = list(diff)
        more = _("\n… {number} more diff lines").format(number=len(lines) - 40) if len(lines) > 40 else ""
        shown = "\n".join(lines[:40]) + more
        return _("{message}. Closest recorded request of this step, diffed against this one:\n{shown}").format(
                   message=message, shown=shown)


def request_of(call: LlmCall) -> dict[str, Any]:
    # an image part reads [image]: the cassette is for a reviewer, and its key already holds the image's bytes
    request: dict[str, Any] = {"messages": [{"role": m.get("role"), "content": m.get("content") if not isinstance(
        m.get("content"), list) else message_text(m)} for m in call.messages]}
    for name in ("temperature", "max_tokens"):
        if getattr(call, name) is not None:
            request[name] = getattr(call, name)
    request.update(call.sampling)
    if call.schema is not None:
        request["schema_fields"] = sorted(call.schema.get("properties", {}))
    if call.tools:
        request["tools"] = [t.get("function", {}).get("name") for t in call.tools]
    return request


def _request_text(request: dict[str, Any]) -> str:
    lines = []
    for message in request.get("messages", []):
        lines.append(f"[{message.get('role')}]")
        lines += str(message.get("content")).splitlines()
    lines += [f"{k}: {v}" for k, v in request.items() if k != "messages"]
    return "\n".join(lines)


def _reply_doc(reply: LlmReply) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    try:
        parsed = json.loads(reply.text)
        exact = json.dumps(parsed, ensure_ascii=False) == reply.text
    except json.JSONDecodeError:
        exact = False
    if exact:
        doc["json"] = parsed  # structured, so a reviewer reads fields, not one long line
    else:
        doc["text"] = reply.text
    if reply.tool_calls:
        doc["tool_calls"] = reply.tool_calls
    doc.update(tokens_in=reply.tokens_in, tokens_out=reply.tokens_out, cost=round(reply.cost, 8))
    return doc


def _reply_of(doc: dict[str, Any]) -> LlmReply:
    text = json.dumps(doc["json"], ensure_ascii=False) if "json" in doc else str(doc.get("text", ""))
    return LlmReply(text, list(doc.get("tool_calls") or []), int(doc.get("tokens_in", 0)),
                    int(doc.get("tokens_out", 0)), float(doc.get("cost", 0.0)))
