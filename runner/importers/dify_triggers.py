"""Dify's newer nodes (DSL 0.4+) that pause or start a workflow: human-input → an `approval` step, trigger-schedule →
the playbook's `triggers:`. Written from Dify's published node types (no such node is in the corpus of
tests/fixtures/import/dify, which is DSL 0.1–0.3); what does not fit is listed, as for every node. Pure."""

from __future__ import annotations

import re
from typing import Any

from runner.i18n import _
from runner.importers.dify import Translator
from runner.importers.dify_graph import Node

_DAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_TIME = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*([AaPp][Mm])?\s*$")


def human_input(t: Translator, node: Node) -> list[dict[str, Any]]:
    """The form's fields are the draft the reviewer edits (each starting at its default); its text the
    instructions; its first action is `approve`. A second action that leads elsewhere cannot be a branch here (a
    rejection ends the run): listed."""
    data = node.data
    fields: dict[str, Any] = {}
    for item in data.get("inputs") or []:
        if not isinstance(item, dict) or not item.get("output_variable_name"):
            continue
        default = item.get("default") or {}
        value = default.get("value") if isinstance(default, dict) else default
        if isinstance(default, dict) and default.get("type") == "variable":
            fields[str(item["output_variable_name"])] = t.expression(value, node)
        else:
            fields[str(item["output_variable_name"])] = value if value is not None else ""
    content = re.sub(r"\{\{#\$output\.[\w]+#\}\}", "", str(data.get("form_content") or ""))  # the fields show
    spec: dict[str, Any] = {"title": node.title or _("review"), "show": fields or t.text(content, node)}
    if fields and content.strip():
        spec["instructions"] = t.text(content.strip(), node)
    if fields:
        spec["editable"] = list(fields)
    timeout = data.get("timeout")
    if isinstance(timeout, int | float) and timeout > 0:
        unit = "d" if str(data.get("timeout_unit") or "hour").startswith("day") else "h"
        spec["timeout"] = f"{timeout:g}{unit}"
    actions = [a for a in data.get("user_actions") or [] if isinstance(a, dict)]
    targets = {str(a.get("id")): {e.target for e in t.graph.outgoing(node.id) if e.handle == str(a.get("id"))}
               for a in actions}
    if len({frozenset(v) for v in targets.values() if v}) > 1:
        others = ", ".join(str(a.get("title") or a.get("id")) for a in actions[1:])
        t.leave_out(node, _("its actions {others} lead elsewhere than '{first}'; here the first approves and "
                            "continues, a rejection ends the run").format(
                              others=others, first=actions[0].get("title") or actions[0].get("id")))
    return [{"approval": spec}]


def schedule(node: Node) -> dict[str, Any] | None:
    """A trigger-schedule node as a playbook trigger, or None when it cannot be one (a one-off date)."""
    data = node.data
    zone = str(data.get("timezone") or "Asia/Shanghai")
    if data.get("mode") == "cron" and data.get("cron_expression"):
        return {"cron": str(data["cron_expression"]), "timezone": zone}
    visual = data.get("visual_config") or {}
    frequency = str(data.get("frequency") or "daily")
    if frequency == "hourly":
        return {"cron": f"{int(visual.get('on_minute') or 0)} * * * *", "timezone": zone}
    match = _TIME.match(str(visual.get("time") or "00:00"))
    if match is None or frequency not in ("daily", "weekly", "monthly"):
        return None
    hour, minute = int(match.group(1)) % 12 if match.group(3) else int(match.group(1)), int(match.group(2))
    if (match.group(3) or "").lower() == "pm":
        hour += 12
    days = "*"
    weekdays = "*"
    if frequency == "weekly":
        weekdays = ",".join(str(_DAYS[d]) for d in visual.get("weekdays") or [] if d in _DAYS) or "*"
    if frequency == "monthly":
        days = ",".join("L" if d == "last" else str(d) for d in visual.get("monthly_days") or []) or "1"
    return {"cron": f"{minute} {hour} {days} * {weekdays}", "timezone": zone}
