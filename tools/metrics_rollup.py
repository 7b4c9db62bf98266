"""Rolling event-level rows (one per order or event) up to periods, each metric by its own rule.

Pure. A day's or a week's figure is computed from the events in it — distinct buyers in a week are
the distinct user ids of that week's orders, never the sum of each day's distinct buyers.
"""

from __future__ import annotations

import json
import re
import statistics
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from runner.i18n import _
from runner.registry import ToolArgumentError
from tools.columns import is_id_name

FUNCTIONS = ("count", "sum", "mean", "min", "max", "nunique")
PERIODS = ("hour", "day", "week", "month")
_RULE = re.compile(r"^\s*(\w+)\s*(?:\((.*)\))?\s*$", re.DOTALL)  # the column: all between the outer brackets


@dataclass(frozen=True)
class Rule:
    name: str
    function: str
    column: str | None

    @property
    def text(self) -> str:
        return self.function if self.column is None else f"{self.function}({self.column})"


def parse_rules(aggregate: dict[str, str], columns: list[str]) -> list[Rule]:
    """`{orders: count, buyers: nunique(user_id), revenue: sum(amount)}` → rules, checked against the file."""
    rules = []
    for name, text in aggregate.items():
        match = _RULE.match(str(text))
        if not match or match.group(1) not in FUNCTIONS:
            raise ToolArgumentError("aggregate", _("{name}: '{text}' is not a rule; write count, or one of "
                                                   "{joined}").format(
                                                     name=name, text=text,
                                                     joined=', '.join(f + '(column)' for f in FUNCTIONS[1:])))
        function, column = match.group(1), _unquoted(match.group(2) or "") or None
        if function != "count" and column is None:
            raise ToolArgumentError("aggregate", _("{name}: {function} needs a column, e.g. {function}(amount)").format(
                                                     name=name, function=function))
        if column is not None and columns:
            found = same_column(column, columns)
            if found is None:
                from runner.errors import did_you_mean

                raise ToolArgumentError("aggregate", _("{name}: no column '{column}'{hint}").format(
                                                         name=name, column=column,
                                                         hint=did_you_mean(column, columns)))
            column = found
        rules.append(Rule(str(name), function, column))
    return rules


def same_column(name: str, columns: list[str]) -> str | None:
    """The column `name` means, written as it is or with other spaces and full-width or half-width forms
    (`起飞延误(分钟)` for `起飞延误（分钟）`)."""
    if name in columns:
        return name
    wanted = _plain(name)
    return next((c for c in columns if _plain(c) == wanted), None)


def _plain(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split())


def _unquoted(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'“”‘’":
        return text[1:-1].strip()
    if len(text) >= 2 and text[0] in "“‘" and text[-1] in "”’":
        return text[1:-1].strip()
    return text


def period_key(moment: datetime, period: str) -> str:
    if period == "hour":
        return moment.strftime("%Y-%m-%d %H:00")
    if period == "day":
        return moment.strftime("%Y-%m-%d")
    if period == "week":
        year, week, _weekday = moment.isocalendar()
        return f"{year}-W{week:02d}"
    return moment.strftime("%Y-%m")


def period_days(moment: datetime, period: str) -> tuple[date, date]:
    """First and last calendar day of the week or month holding `moment` (the day itself otherwise)."""
    day = moment.date()
    if period == "week":
        first = day - timedelta(days=day.weekday())
        return first, first + timedelta(days=6)
    if period == "month":
        first = day.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        return first, following - timedelta(days=1)
    return day, day


def coverage_note(first: date, last: date, span: tuple[date, date]) -> str | None:
    """Why a period is partial — the data starts after its first day or ends before its last — or None."""
    start, end = span
    if first <= start and end <= last:
        return None
    covered = (min(end, last) - max(start, first)).days + 1
    return _("the data covers {covered} of its {days} days").format(covered=max(covered, 0),
                                                                     days=(end - start).days + 1)


def _value(rule: Rule, rows: list[dict[str, Any]]) -> float | None:
    if rule.function == "count":
        return float(len(rows))
    column = rule.column or ""
    if rule.function == "nunique":
        return float(len({str(r.get(column)).strip() for r in rows if r.get(column) not in (None, "")}))
    numbers = [float(r[column]) for r in rows if r.get(column) is not None]
    if not numbers:
        return None
    if rule.function == "sum":
        return round(sum(numbers), 6)
    if rule.function == "mean":
        return round(statistics.fmean(numbers), 6)
    return min(numbers) if rule.function == "min" else max(numbers)


def rollup(events: Iterable[tuple[datetime, dict[str, Any]]], rules: list[Rule], period: str,
           time_field: str) -> list[dict[str, Any]]:
    """One row per period: each rule's value over that period's events, the event count (`rows`), the days
    with events (`days`), and `complete` (false when the data covers only part of the period's days)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    spans: dict[str, tuple[date, date]] = {}
    days: dict[str, set[date]] = {}
    first = last = None
    for moment, row in events:
        key = period_key(moment, period)
        groups.setdefault(key, []).append(row)
        spans.setdefault(key, period_days(moment, period))
        days.setdefault(key, set()).add(moment.date())
        first = moment.date() if first is None or moment.date() < first else first
        last = moment.date() if last is None or moment.date() > last else last
    out = []
    for key in sorted(groups):
        note = coverage_note(first, last, spans[key]) if first and last and period in ("week", "month") else None
        out.append({time_field: key, **{r.name: _value(r, groups[key]) for r in rules},
                    "rows": len(groups[key]), "days": len(days[key]), "complete": note is None,
                    **({"partial": note} if note else {})})
    return out


def suggest_aggregate(columns: list[str], numeric: list[str]) -> str:
    """The `aggregate:` a user probably wants for an event-level table, as a YAML flow mapping."""
    parts = ["records: count"]
    parts += [f"{_flow(_plural(c))}: {_flow(f'nunique({c})')}" for c in columns if is_id_name(c)][:2]
    parts += [f"{_flow(c)}: {_flow(f'sum({c})')}" for c in numeric if not is_id_name(c)]
    return "{" + ", ".join(parts) + "}"


def _flow(text: str) -> str:
    """`text` as a YAML flow scalar: as it is, or in double quotes when it holds what YAML would read otherwise."""
    plain = text == text.strip() and not re.search(r"[,:{}\[\]#&*!|>'\"%@`]", text)
    return text if plain else json.dumps(text, ensure_ascii=False)


def _plural(column: str) -> str:
    base = re.sub(r"(?i)[_\s-]*(u?id|uuid|no|编号|号)$", "", column) or column
    return f"{base}s" if base.isascii() else f"{base}数"
