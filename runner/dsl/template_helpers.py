"""Filters translated workflows keep needing — regular expressions, JSON in and out, splitting text, dates in the
project's timezone — each inside the sandbox's bounds: a regular expression runs on the `regex` engine with the
render's remaining time as its timeout (Python's `re` cannot be interrupted, and `(a+)+$` on 30 characters takes
minutes), JSON nesting is bounded, and every result counts against the size limits."""

from __future__ import annotations

import json
import time
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import regex
from jinja2 import pass_context
from jinja2.runtime import Context

from runner.dsl import sandbox
from runner.i18n import _

DEFAULT_TIMEZONE = "Asia/Shanghai"
MAX_PATTERN = 1000  # characters of one regular expression
MAX_JSON_DEPTH = 100


def _seconds_left() -> float:
    """What is left of the render's time: a regular expression gets it as its timeout."""
    budget = sandbox.current()
    if budget is None:
        return sandbox.DEFAULT_SECONDS
    budget.tick(0, costly=True)  # already past the deadline: the sandbox's own error
    return max(0.001, budget.deadline - time.monotonic())


def _compiled(pattern: Any, ignorecase: bool, multiline: bool) -> Any:
    if not isinstance(pattern, str) or len(pattern) > MAX_PATTERN:
        raise ValueError(_("a regular expression is text of at most {limit} characters").format(limit=MAX_PATTERN))
    flags = (regex.IGNORECASE if ignorecase else 0) | (regex.MULTILINE if multiline else 0)
    try:
        return regex.compile(pattern, flags | regex.VERSION0)
    except regex.error as exc:
        raise ValueError(_("invalid regular expression {pattern!r}: {reason}").format(pattern=pattern,
                                                                                    reason=exc)) from None


def _timed(run: Any) -> Any:
    try:
        return run(_seconds_left())
    except TimeoutError:
        raise sandbox.TemplateLimit(_("a regular expression took too long (it backtracks; make it more specific, "
                                      "or raise the step's timeout)")) from None


def _text(value: Any) -> str:
    text = "" if value is None else str(value)
    sandbox.check_length(len(text))
    return text


def regex_search(value: Any, pattern: str, group: int | str = 0, ignorecase: bool = False,
                 multiline: bool = False) -> str | None:
    """The first match (or its `group`), or none: `text | regex_search('订单号(\\d+)', 1)`."""
    compiled = _compiled(pattern, ignorecase, multiline)
    found = _timed(lambda left: compiled.search(_text(value), timeout=left))
    return found.group(group) if found is not None else None


def regex_findall(value: Any, pattern: str, ignorecase: bool = False, multiline: bool = False) -> list[Any]:
    """Every match (a list of groups for a pattern with several)."""
    compiled = _compiled(pattern, ignorecase, multiline)
    found: list[Any] = _timed(lambda left: compiled.findall(_text(value), timeout=left))
    return [list(match) if isinstance(match, tuple) else match for match in found]  # lists, as JSON has them


def regex_replace(value: Any, pattern: str, replacement: str = "", count: int = 0, ignorecase: bool = False,
                  multiline: bool = False) -> str:
    """Matches replaced (`\\1` for a group); count 0 replaces all."""
    compiled = _compiled(pattern, ignorecase, multiline)
    text = _text(value)
    replaced: str = _timed(lambda left: compiled.sub(str(replacement), text, count=count, timeout=left))
    return _text(replaced)


def from_json(value: Any) -> Any:
    """Text holding JSON → its value (what an HTTP API or a model returned as text)."""
    text = _text(value)
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(_("not JSON ({msg} at character {pos})").format(msg=exc.msg, pos=exc.pos)) from None
    except RecursionError:
        raise ValueError(_("the JSON nests more than {limit} levels deep").format(limit=MAX_JSON_DEPTH)) from None
    if _depth(parsed) > MAX_JSON_DEPTH:
        raise ValueError(_("the JSON nests more than {limit} levels deep").format(limit=MAX_JSON_DEPTH))
    return parsed


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def split(value: Any, separator: str | None = None, limit: int = -1) -> list[str]:
    """`'a,b' | split(',')`; with no separator, on runs of whitespace; empty text → []."""
    text = _text(value)
    if separator == "":
        raise ValueError(_("split needs a separator that is not empty"))
    if not text:
        return []
    return text.split(separator, limit)


@pass_context
def date_format(context: Context, value: Any = "now", format: str = "%Y-%m-%d", timezone: str | None = None) -> str:
    """A time in the project's timezone (`[project] timezone`, else Asia/Shanghai): `'now' | date`,
    `run.started_at | date('%m月%d日 %H:%M')`, an ISO text or a Unix time."""
    run = context.get("run")
    zone_name = timezone or (run.get("timezone") if isinstance(run, dict) else None) or DEFAULT_TIMEZONE
    try:
        zone = ZoneInfo(str(zone_name))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(_("unknown timezone {zone!r}; write it like 'Asia/Shanghai'").format(zone=zone_name)) from None
    moment = _moment(value, zone)
    if len(str(format)) > 200:
        raise ValueError(_("a date format is at most 200 characters"))
    return moment.astimezone(zone).strftime(str(format))


def _moment(value: Any, zone: ZoneInfo) -> datetime:
    if value in (None, "now", ""):
        return datetime.now(zone)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=zone)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=zone)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if abs(value) > 1e11:  # milliseconds, as JavaScript and many APIs write them
            value = value / 1000
        return datetime.fromtimestamp(value, zone)
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(_("{value!r} is not a time: give 'now', an ISO date like '2026-08-17 09:30', or a Unix "
                           "time").format(value=value)) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


_ROLE_LINE = regex.compile(r"^[ \t]*#[ \t]*(system|user|assistant)[ \t]*:[ \t]*$", regex.M | regex.I)


def role_messages(value: Any) -> list[dict[str, str]]:
    """Text with `# system:` / `# user:` / `# assistant:` lines (Prompt Flow's prompt files) → chat messages; text
    before the first marker is a user message."""
    text = _text(value)
    parts = _ROLE_LINE.split(text)
    messages = [{"role": "user", "content": parts[0].strip()}] if parts[0].strip() else []
    messages += [{"role": role.lower(), "content": content.strip()}
                 for role, content in zip(parts[1::2], parts[2::2], strict=True)]
    return messages


FILTERS = {"regex_search": regex_search, "regex_findall": regex_findall, "regex_replace": regex_replace,
           "from_json": from_json, "split": split, "date": date_format, "role_messages": role_messages}
