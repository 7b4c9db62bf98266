"""The playbook around the translated nodes: inputs from the start node, steps in an order that follows the edges,
`needs` from the edges, if-else and question-classifier branches as `switch` steps, iteration bodies as inline map
bodies, outputs from the end and answer nodes. Pure."""

from __future__ import annotations

import json
from typing import Any

from runner.i18n import _
from runner.importers.dify import Imported, Translator
from runner.importers.dify_graph import BRANCHING, Node
from runner.importers.dify_nodes import HANDLERS, REASONS, is_placeholder, placeholder
from runner.importers.dify_triggers import human_input, schedule

Step = dict[str, Any]
_INPUT_TYPES = {"text-input": "string", "paragraph": "string", "select": "string", "number": "number",
                "file": "file", "file-list": "list", "checkbox": "boolean", "json_object": "object"}
_NUMERIC = {"=", "≠", ">", "<", "≥", "≤", ">=", "<="}  # Dify's number comparisons (text has is / is not)
_TEXT_COMPARISONS = {"contains": "{value} in ({var} or '')", "not contains": "{value} not in ({var} or '')",
                     "start with": "({var} or '').startswith({value})", "end with": "({var} or '').endswith({value})",
                     "is": "{var} == {value}", "=": "{var} == {value}", "is not": "{var} != {value}",
                     "≠": "{var} != {value}", "empty": "not {var}", "not empty": "{var}", "null": "{var} is none",
                     "is null": "{var} is none", "not null": "{var} is not none", "is not null": "{var} is not none",
                     ">": "{var} > {value}", "<": "{var} < {value}", "≥": "{var} >= {value}", ">=": "{var} >= {value}",
                     "≤": "{var} <= {value}", "<=": "{var} <= {value}", "in": "{var} in {value}",
                     "not in": "{var} not in {value}", "exists": "{var}", "not exists": "not {var}"}


def translate(app: dict[str, Any], name: str | None = None) -> Imported:
    """A Dify app's DSL → the playbook and what was left out (`name`: the playbook's, which also names its
    code-node tools; default: from the app's name)."""
    translator = Translator(app)
    if name:
        translator.name = translator.result.name = name
    return build(translator)


def build(t: Translator) -> Imported:
    t.placeholders = {n.id for n in t.graph.nodes.values() if is_placeholder(n)}
    start = next((n for n in t.graph.nodes.values() if n.type == "start"), None)
    if start is not None:
        _inputs(t, start)
    t.result.nodes = sum(1 for n in t.graph.nodes.values() if n.type not in ("start", "iteration-start"))
    for node in t.graph.nodes.values():
        if node.type.startswith("trigger-") and node.type != "trigger-schedule":
            t.leave_out(node, _("a {kind} starts a Dify app from outside; start the playbook from the web API or "
                                "the IM callbacks instead").format(kind=node.type))
    steps = _steps(t, None)
    playbook: dict[str, Any] = {"name": t.name}
    if t.meta.get("name") and str(t.meta["name"]) != t.name:
        playbook["title"] = str(t.meta["name"])
    if t.meta.get("description"):
        playbook["description"] = str(t.meta["description"])
    playbook["inputs"] = t.inputs
    if t.secrets:
        playbook["secrets"] = t.secrets
    playbook["steps"] = steps
    playbook["outputs"] = _outputs(t)
    triggers = []
    for node in t.graph.nodes.values():
        if node.type == "trigger-schedule":
            trigger = schedule(node)
            if trigger is None:
                t.leave_out(node, _("a schedule that runs once is not a trigger; start that run by hand"))
            else:
                triggers.append(trigger)
    if triggers:
        playbook["triggers"] = triggers
    t.result.playbook = playbook
    t.result.canvas_notes = t.graph.notes
    if t.models:
        used = ", ".join(f"{name} ({count})" for name, count in sorted(t.models.items()))
        t.result.notes.append(_("the Dify app used these models: {used}; every llm step here calls `default` — "
                                "point [models.default] in playbook.toml at the one you want").format(used=used))
    return t.result


def _inputs(t: Translator, start: Node) -> None:
    for variable in start.data.get("variables") or []:
        if not isinstance(variable, dict) or not variable.get("variable"):
            continue
        kind = _INPUT_TYPES.get(str(variable.get("type")), "string")
        spec: dict[str, Any] = {"type": kind}
        if variable.get("label") and variable["label"] != variable["variable"]:
            spec["title"] = str(variable["label"])
        if variable.get("hint") or variable.get("description"):
            spec["description"] = str(variable.get("hint") or variable.get("description"))
        if variable.get("options"):
            spec["enum"] = list(variable["options"])
        if kind == "string" and isinstance(variable.get("max_length"), int) and variable["max_length"] > 0:
            spec["max_length"] = variable["max_length"]
        if variable.get("default") not in (None, ""):
            spec["default"] = variable["default"]
        elif not variable.get("required", True):
            spec["required"] = False
        t.inputs[str(variable["variable"])] = spec


def _steps(t: Translator, container: str | None, fallback: str = "end") -> list[Step]:
    """The steps of the top level (container None) or of one iteration's or loop's body, in order. `fallback`:
    where a branch that leads nowhere goes (a loop's body: to the end of the pass)."""
    nodes = t.graph.inside(container)
    routes: dict[str, Step] = {}  # a branching node → its switch step, its cases filled in once all ids exist
    written: list[Step] = []
    entry: dict[str, str] = {}
    for node in nodes:
        if node.type in ("start", "end") or node.type.startswith("trigger-"):
            continue
        made = _node_steps(t, node)
        if node.type in ("if-else", "question-classifier"):
            route = {"id": t.names.claim(f"{t.step_of[node.id]}_route") if node.type != "if-else" else
                     t.step_of[node.id], "title": node.title, "switch": {}}
            made = [*(made if node.type != "if-else" else []), route]
            routes[node.id] = route
        for j, step in enumerate(made):
            step.setdefault("id", t.step_of[node.id])
            step.setdefault("title", node.title)
            if j and "needs" not in step:  # a loop's steps come with their own
                step["needs"] = [made[j - 1]["id"]]
        entry[node.id] = made[0]["id"]
        t.exit_of[node.id] = made[-1]["id"]
        first = made[0]
        preds = [t.exit_of[e.source] for e in t.graph.incoming(node.id)
                 if e.source in entry and e.source not in routes]
        preds += [_branch_step(t, routes, e.source, e.handle, written) for e in t.graph.incoming(node.id)
                  if e.source in routes]
        first["needs"] = list(dict.fromkeys(preds))
        written += made
        if node.type not in BRANCHING and any(t.graph.nodes[e.target].type == "loop-end"
                                             for e in t.graph.outgoing(node.id)):
            made[-1]["goto"] = fallback_exit(t, container)  # "exit loop": the loop ends here
    for node in t.graph.nodes.values():  # a branch to a loop's "exit loop" marker leaves the loop
        if node.type == "loop-end" and node.parent == container and container is not None:
            entry[node.id] = fallback_exit(t, container)
    for node_id, route in routes.items():
        _fill_switch(t, t.graph.nodes[node_id], route, entry, fallback)
    return [_tidy(dict(step), written[i - 1] if i else None) for i, step in enumerate(written)]


def _node_steps(t: Translator, node: Node) -> list[Step]:
    if node.type == "if-else":
        return []
    if node.type == "iteration":
        return [_iteration(t, node)]
    if node.type == "loop" and node.parent is None:
        return _loop(t, node)
    if node.type == "human-input":
        return human_input(t, node)
    handler = HANDLERS.get(node.type)
    if handler is None:
        reason = REASONS.get(node.type)
        return placeholder(t, node, _(reason) if reason else _("Dify node type '{kind}' has no translation").format(
                                        kind=node.type))
    return handler(t, node)


def _branch_step(t: Translator, routes: dict[str, Step], source: str, handle: str, written: list[Step]) -> str:
    """The step a branch's target needs: the switch, or — when one branch leads to several nodes at once — a step
    of that branch of its own that they all need."""
    targets = [e.target for e in t.graph.outgoing(source) if e.handle == handle]
    route = routes[source]
    if len(targets) < 2:
        return str(route["id"])
    fans = route.setdefault("_fans", {})
    if handle not in fans:
        fan = {"id": t.names.claim(f"{route['id']}_{len(fans) + 1}"), "title": _("branch {handle} of {title}").format(
                   handle=handle, title=route["title"]), "template": "", "needs": [route["id"]]}
        fans[handle] = fan
        written.insert(written.index(route) + 1, fan)
    return str(fans[handle]["id"])


def _fill_switch(t: Translator, node: Node, route: Step, entry: dict[str, str], fallback: str = "end") -> None:
    fans = route.pop("_fans", {})

    def goto(handle: str) -> str:
        if handle in fans:
            return str(fans[handle]["id"])
        targets = [entry[e.target] for e in t.graph.outgoing(node.id) if e.handle == handle and e.target in entry]
        return targets[0] if targets else fallback

    cases = []
    if node.type == "question-classifier":
        answer = f"steps.{t.step_of[node.id]}.output.class_name"
        for klass in node.data.get("classes") or []:
            cases.append({"if": "${{ " + answer + " == " + json.dumps(str(klass.get("name")), ensure_ascii=False)
                          + " }}", "goto": goto(str(klass.get("id")))})
        route["switch"] = {"cases": cases, "default": fallback}
        return
    written = node.data.get("cases") or [{"case_id": "true", "conditions": node.data.get("conditions") or [],
                                          "logical_operator": node.data.get("logical_operator", "and")}]
    for case in written:
        condition = _condition(t, node, case)
        cases.append({"if": "${{ " + condition + " }}", "goto": goto(str(case.get("case_id") or case.get("id")))})
    route["switch"] = {"cases": cases, "default": goto("false")}


def _condition(t: Translator, node: Node, case: dict[str, Any]) -> str:
    parts = []
    for condition in case.get("conditions") or []:
        operator = str(condition.get("comparison_operator") or "is")
        var = t.reference(condition.get("variable_selector"), node, text=False)
        value = condition.get("value")
        if isinstance(value, str) and "{{#" in value:
            written = t.text(value, node)
            value_text = written[4:-3] if written.startswith("${{ ") and written.endswith(" }}") else json.dumps(
                written, ensure_ascii=False)
        elif (number := _number(value)) is not None and (operator in _NUMERIC or
                                                          condition.get("varType") == "number"):
            value_text = number
            if operator in _NUMERIC:  # Dify compares these as numbers: a code node's 1 equals the written '1'
                var = f"({var}) | float"
        else:
            value_text = json.dumps(value, ensure_ascii=False)
        pattern = _TEXT_COMPARISONS.get(operator)
        if pattern is None:
            t.leave_out(node, _("condition operator '{operator}' has no translation; it reads as false").format(
                                  operator=operator))
            parts.append("false")
            continue
        parts.append("(" + pattern.format(var=f"({var})", value=value_text) + ")")
    joiner = " or " if case.get("logical_operator") == "or" else " and "
    return joiner.join(parts) or "true"


def _number(value: Any) -> str | None:
    """A number written in a condition (Dify keeps them as text: '1', '0.5'), as an expression literal."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return repr(value)
    try:
        return repr(float(value)) if "." in str(value) else str(int(str(value).strip()))
    except (TypeError, ValueError):
        return None


def _iteration(t: Translator, node: Node) -> Step:
    data = node.data
    t.outer_binds.setdefault(node.id, {})
    body = _steps(t, node.id)
    selector = data.get("output_selector") or []
    if selector and len(selector) >= 2 and selector[0] in t.graph.nodes:
        inner = t.graph.nodes[selector[0]]
        result = t.reference(selector, inner, text=False)
        if body and result != f"steps.{body[-1]['id']}.output":
            body.append({"id": t.names.claim(f"{t.step_of[node.id]}_result"), "title": _("each item's result"),
                         "template": "${{ " + result + " }}"})
    if not body:
        body = [{"id": t.names.claim(f"{t.step_of[node.id]}_item"), "template": "${{ item }}"}]
    step: Step = {"map": t.expression(data.get("iterator_selector"), node)}
    if data.get("is_parallel"):
        step["concurrency"] = int(data.get("parallel_nums") or 10)
    else:
        step["concurrency"] = 1  # Dify runs a sequential iteration one item at a time
    if t.outer_binds[node.id]:
        step["with"] = {name: "${{ " + path + " }}" for name, path in t.outer_binds[node.id].items()}
    step["steps"] = body
    if data.get("error_handle_mode") in ("continue-on-error", "remove-abnormal-output"):
        step["on_error"] = "skip"
    return step


def fallback_exit(t: Translator, loop: str | None) -> str:
    """The step after a loop's passes (where its "exit loop" leads)."""
    return t.loop_exits.get(loop or "", "end")


def _loop(t: Translator, node: Node) -> list[Step]:
    """A Dify loop → a `goto` loop: a head step (its variables' values as the pass begins; its visits count the
    passes), the body's steps, a switch that ends the loop when a break condition holds or `loop_count` passes
    are done and otherwise goes back to the head, and a step after it (the variables' final values)."""
    data = node.data
    head = t.loop_heads[node.id] = t.step_of[node.id]
    done = t.loop_exits[node.id] = t.names.claim(f"{head}_done")
    check = t.names.claim(f"{head}_check")
    count = max(1, int(data.get("loop_count") or 10))
    names = [str(v["label"]) for v in data.get("loop_variables") or [] if isinstance(v, dict) and v.get("label")]

    def values() -> dict[str, str] | str:
        return {name: "${{ " + t.loop_value(node, name, [], node) + " }}" for name in names} or ""

    first: Step = {"id": head, "title": node.title, "template": values(), "max_visits": count}
    body = _steps(t, node.id, fallback=check)
    needs: list[list[str]] = []
    for i, step in enumerate(body):  # what each step waits for, said out (the body's first steps wait for the head)
        wanted = step.get("needs", [body[i - 1]["id"]] if i else [head])
        needs.append(wanted or [head])
        step["needs"] = needs[-1]
    needed = {name for wanted in needs for name in wanted}
    routes_to_check = [s["id"] for s in body if check in _targets(s)]
    ends = [s["id"] for s in body if s["id"] not in needed and "switch" not in s and "goto" not in s]
    breaking = [s["id"] for s in body if done in _targets(s)]
    condition = _condition(t, node, {"conditions": data.get("break_conditions") or [],
                                     "logical_operator": data.get("logical_operator", "and")}) \
        if data.get("break_conditions") else ""
    stop = (f"({condition}) or " if condition else "") + f"steps.{head}.visits >= {count}"
    test: Step = {"id": check, "title": _("{title}: another pass?").format(title=node.title),
                  "needs": list(dict.fromkeys([*ends, *routes_to_check])) or [head],
                  "switch": {"cases": [{"if": "${{ " + stop + " }}", "goto": done}], "default": head}}
    after: Step = {"id": done, "title": _("{title}: done").format(title=node.title),
                   "needs": list(dict.fromkeys([check, *breaking])), "template": values()}
    return [first, *body, test, after]


def _targets(step: Step) -> set[str]:
    """Where a step routes: its switch's cases and default, its goto."""
    switch = step.get("switch") or {}
    return {str(case.get("goto")) for case in switch.get("cases") or []} | (
        {str(switch["default"])} if switch.get("default") else set()) | ({str(step["goto"])} if "goto" in step
                                                                         else set())


def _outputs(t: Translator) -> dict[str, Any]:
    ends = [n for n in t.graph.nodes.values() if n.type == "end" and n.parent is None]
    found: dict[str, list[str]] = {}
    for end in ends:
        for output in end.data.get("outputs") or []:
            if isinstance(output, dict) and output.get("variable"):
                read = t.reference(output.get("value_selector"), end, text=False)
                if len(ends) > 1 and read.count(".") > 2 and "| default" not in read:
                    read += " | default(none)"  # an end on a branch: its reads may be of steps that did not run
                found.setdefault(str(output["variable"]), []).append(read)
    outputs = {name: "${{ " + " or ".join(dict.fromkeys(reads)) + " }}" for name, reads in found.items()}
    answers = [f"steps.{t.step_of[n.id]}.output" for n in t.graph.inside(None) if n.type == "answer"]
    if answers:
        outputs["answer"] = "${{ " + (answers[0] if len(answers) == 1 else "[" + ", ".join(answers) +
                                      "] | select | join('\\n\\n')") + " }}"
    return outputs


def _tidy(step: Step, before: Step | None) -> Step:
    """Keys in a readable order; `needs` left out where it says what the order already says."""
    needs = step.pop("needs", [])
    routing = before is not None and ("switch" in before or "goto" in before)
    implied = (before is None and not needs) or (before is not None and not routing and needs == [before["id"]])
    ordered = {"id": step.pop("id")}
    if step.get("title") and step["title"] != ordered["id"]:
        ordered["title"] = step.pop("title")
    step.pop("title", None)
    if not implied:
        ordered["needs"] = needs
    return ordered | step
