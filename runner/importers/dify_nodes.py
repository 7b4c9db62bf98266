"""One translation per Dify node type: a node's data → the steps that do its work (most nodes: one). Routing (which
branch goes where) and `needs` are added by runner/importers/dify_steps.py. Pure."""

from __future__ import annotations

import json
import keyword
import re
from collections.abc import Callable
from typing import Any

from runner.i18n import N_, _
from runner.importers.dify import CodeNode, Translator
from runner.importers.dify_graph import Node
from runner.importers.dify_tools import AS_TOOLS, as_template, tool_key

Step = dict[str, Any]
_PARAMETERS = ("temperature", "top_p", "presence_penalty", "frequency_penalty", "max_tokens", "seed", "stop")
_JINJA_VARIABLE = re.compile(r"(?<!\$)\{\{(-?)")


def _sampling(params: Any) -> dict[str, Any]:
    params = params if isinstance(params, dict) else {}
    found = {k: params[k] for k in _PARAMETERS if params.get(k) not in (None, "", [])}
    if isinstance(found.get("stop"), list):
        found["stop"] = found["stop"][:4]
    return found


def _jinja(t: Translator, node: Node, template: str, variables: Any) -> str:
    """A Jinja2 template with named variables (template-transform, jinja2 prompts) → ours: each variable set from
    its expression at the top, `{{ x }}` written `${{ x }}`."""
    sets = "".join("{% set " + str(v.get("variable")) + " = " + t.reference(v.get("value_selector"), node,
                                                                             text=False) + " %}"
                   for v in variables or [] if isinstance(v, dict) and v.get("variable"))
    return sets + _JINJA_VARIABLE.sub(lambda m: "${{" + m.group(1), str(template or ""))


def llm(t: Translator, node: Node) -> list[Step]:
    data = node.data
    t.model(node)
    context = data.get("context") or {}
    context_text = ("${{ " + t.reference(context.get("variable_selector"), node) + " }}"
                    if context.get("enabled") and context.get("variable_selector") else "")
    template = data.get("prompt_template")
    turns = template if isinstance(template, list) else [template] if isinstance(template, dict) else []
    messages = []
    for turn in turns:
        if not isinstance(turn, dict):
            continue
        if turn.get("edition_type") == "jinja2":
            text = _jinja(t, node, turn.get("jinja2_text", ""), (data.get("prompt_config") or {}).get(
                "jinja2_variables"))
        else:
            text = t.text(turn.get("text", ""), node)
        messages.append({"role": str(turn.get("role") or "user"), "content": text.replace("{{#context#}}",
                                                                                          context_text)})
    body: dict[str, Any] = {}
    while messages and messages[0]["role"] == "system":
        body["system"] = "\n\n".join(filter(None, [body.get("system"), messages.pop(0)["content"]]))
    prompt = messages.pop()["content"] if messages and messages[-1]["role"] == "user" else None
    if messages:
        body["messages"] = messages
    memory = data.get("memory")
    if isinstance(memory, dict):  # a chatflow's conversation memory: an explicit `history` input
        t.inputs.setdefault("history", {"type": "history", "default": [], "description": "earlier turns of the "
                                        "conversation (Dify: the LLM node's memory)"})
        body["history"] = "${{ inputs.history }}"
        query = (memory.get("query_prompt_template") or "").strip()
        if query:
            prompt = "\n\n".join(filter(None, [prompt, t.text(query, node)]))
    if prompt is not None:
        body["prompt"] = prompt
    if not body:
        body["prompt"] = ""
    vision = data.get("vision") or {}
    if vision.get("enabled"):
        selector = (vision.get("configs") or {}).get("variable_selector") or ["sys", "files"]
        body["images"] = t.expression(selector, node)
    if data.get("structured_output_enabled") and isinstance((data.get("structured_output") or {}).get("schema"),
                                                            dict):
        body["output"] = data["structured_output"]["schema"]
    body |= _sampling((data.get("model") or {}).get("completion_params"))
    return [{"llm": body}]


def parameter_extractor(t: Translator, node: Node) -> list[Step]:
    data = node.data
    t.model(node)
    properties: dict[str, Any] = {}
    required = []
    for p in data.get("parameters") or []:
        kind = str(p.get("type") or "string")
        schemas: dict[str, dict[str, Any]] = {
            "array[string]": {"type": "array", "items": {"type": "string"}},
            "array[number]": {"type": "array", "items": {"type": "number"}},
            "array[object]": {"type": "array", "items": {"type": "object"}},
            "number": {"type": "number"}, "bool": {"type": "boolean"}, "boolean": {"type": "boolean"}}
        schema = dict(schemas.get(kind, {"type": "string"}))
        if kind == "select" and p.get("options"):
            schema = {"enum": list(p["options"])}
        if p.get("description"):
            schema["description"] = str(p["description"])
        properties[str(p["name"])] = schema
        if p.get("required"):
            required.append(str(p["name"]))
    query = t.text("{{#" + ".".join(str(s) for s in data.get("query") or []) + "#}}", node) if data.get(
        "query") else ""
    instruction = t.text(data.get("instruction") or "", node)
    prompt = "\n\n".join(filter(None, ["从下面的文本中提取参数。", instruction, query]))
    output = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
    return [{"llm": {"prompt": prompt, "output": output,
                     **_sampling((data.get("model") or {}).get("completion_params"))}}]


def question_classifier(t: Translator, node: Node) -> list[Step]:
    data = node.data
    t.model(node)
    classes = [str(c.get("name")) for c in data.get("classes") or [] if isinstance(c, dict)]
    query = t.text("{{#" + ".".join(str(s) for s in data.get("query_variable_selector") or []) + "#}}", node)
    instruction = t.text(data.get("instruction") or data.get("instructions") or "", node)
    prompt = "\n\n".join(filter(None, ["把下面的输入归入这些类别之一：" + "、".join(classes) + "。", instruction,
                                       f"输入：{query}"]))
    return [{"llm": {"prompt": prompt, "output": {"class_name": {"enum": classes}},
                     **_sampling((data.get("model") or {}).get("completion_params"))}}]


def template_transform(t: Translator, node: Node) -> list[Step]:
    return [{"template": _jinja(t, node, node.data.get("template", ""), node.data.get("variables"))}]


def variable_aggregator(t: Translator, node: Node) -> list[Step]:
    data = node.data
    groups = ((data.get("advanced_settings") or {}).get("groups") or []) if (
        data.get("advanced_settings") or {}).get("group_enabled") else []

    def first_of(selectors: Any) -> str:
        return "${{ " + " or ".join(t.reference(s, node, text=False) for s in selectors or []) + " }}" \
            if selectors else ""

    if groups:
        return [{"template": {str(g.get("group_name")): first_of(g.get("variables")) for g in groups}}]
    return [{"template": first_of(data.get("variables"))}]


def assigner(t: Translator, node: Node) -> list[Step]:
    """Writes to conversation variables: the new values, computed; later readers read them from this step."""
    data = node.data
    items = data.get("items") if data.get("version") == "2" else [
        {"variable_selector": data.get("assigned_variable_selector"), "operation": data.get("write_mode"),
         "value": data.get("input_variable_selector"), "input_type": "variable"}]
    values: dict[str, str] = {}
    conversation: set[str] = set()  # what later readers of a conversation variable read from this step
    for item in items or []:
        target = [str(p) for p in item.get("variable_selector") or []]
        if len(target) < 2:
            continue
        if target[0] == "conversation":
            conversation.add(target[1])
        current = t.reference(target, node, text=False)
        given = t.reference(item.get("value"), node, text=False) if item.get("input_type", "variable") == \
            "variable" else json.dumps(item.get("value"), ensure_ascii=False)
        operation = str(item.get("operation") or "over-write")
        expression = {"over-write": given, "set": given, "clear": "none", "append": f"({current} or []) + [{given}]",
                      "extend": f"({current} or []) + {given}", "+=": f"{current} + {given}",
                      "-=": f"{current} - {given}", "*=": f"{current} * {given}", "/=": f"{current} / {given}"}.get(
            operation)
        if expression is None:
            t.leave_out(node, _("assigner operation '{operation}' has no translation").format(operation=operation))
            continue
        values[target[1]] = "${{ " + expression + " }}"
    step = t.step_of[node.id]
    single = len(values) == 1
    for var in values.keys() & conversation:  # a loop's variables are found by the loop (Translator.loop_writers)
        t.assigned.setdefault(var, []).append((node.id, step, None if single else var))
    return [{"template": next(iter(values.values())) if single else values or ""}]


def code(t: Translator, node: Node) -> list[Step]:
    data = node.data
    if str(data.get("code_language") or "python3") != "python3":
        return placeholder(t, node, _("{language} code runs only in Dify's sandbox; rewrite it in Python").format(
                                      language=data.get("code_language")))
    names = [str(v["variable"]) for v in data.get("variables") or [] if isinstance(v, dict) and v.get("variable")]
    outputs = {str(name): str((spec or {}).get("type") or "string")
               for name, spec in (data.get("outputs") or {}).items()}
    if bad := [name for name in [*names, *outputs] if not name.isidentifier() or keyword.iskeyword(name)]:
        return placeholder(t, node, _("its variable '{name}' is not a Python name, so its code cannot be called "
                                      "with it; rename it in Dify and import again").format(name=bad[0]))
    arguments = {str(v["variable"]): t.expression(v.get("value_selector"), node)
                 for v in data.get("variables") or [] if isinstance(v, dict) and v.get("variable")}
    step = t.step_of[node.id]
    t.result.code.append(CodeNode(step, node.id, node.title, str(data.get("code") or ""), list(arguments), outputs))
    return [{"tool": f"{t.name}.{step}", "with": arguments} if arguments else {"tool": f"{t.name}.{step}"}]


def http_request(t: Translator, node: Node) -> list[Step]:
    data = node.data
    step = t.step_of[node.id]
    args: dict[str, Any] = {"url": t.text(data.get("url"), node), "method": str(data.get("method") or "get").upper()}
    headers = _pairs(t, node, data.get("headers"))
    auth = data.get("authorization") or {}
    if auth.get("type") == "api-key":
        config = auth.get("config") or {}
        secret = f"{step.upper()}_API_KEY"
        if secret not in t.secrets:
            t.secrets.append(secret)
        kind = config.get("type")
        header = str(config.get("header") or "Authorization") if kind == "custom" else "Authorization"
        value = {"bearer": "Bearer ", "basic": "Basic "}.get(str(kind), "") + "${{ secrets." + secret + " }}"
        headers[header] = value
        t.result.notes.append(_("step '{step}': its API key is read from the environment variable {secret} (the key "
                                "in the Dify file was not copied); set it before a run").format(step=step,
                                                                                               secret=secret))
    if headers:
        args["headers"] = headers
    if query := _pairs(t, node, data.get("params")):
        args["query"] = query
    extra: list[Step] = []
    body = data.get("body") or {}
    kind = body.get("type")
    written = body.get("data")
    if kind == "json" and isinstance(written, list):  # DSL 0.1.4 on: [{key: '', type: text, value: '<the JSON>'}]
        written = next((row.get("value") for row in written if isinstance(row, dict)), "")
    if kind == "json" and str(written or "").strip():
        raw = written if isinstance(written, str) else json.dumps(written, ensure_ascii=False)
        try:
            args["json"] = json.loads(raw)  # constant JSON: written as it is
        except json.JSONDecodeError:
            text_step = t.names.claim(f"{step}_body")
            extra.append({"id": text_step, "template": t.text(raw, node), "title": f"{node.title}（请求体）"})
            args["json"] = "${{ steps." + text_step + ".output | from_json }}"
    elif kind in ("form-data", "x-www-form-urlencoded"):
        rows: list[Any] = body["data"] if isinstance(body.get("data"), list) else []
        args["form"] = {str(r.get("key")): t.text(r.get("value"), node) for r in rows if isinstance(r, dict)
                        and r.get("key")} or _pairs(t, node, body.get("data"))
    elif kind not in (None, "none", "json"):
        t.leave_out(node, _("a '{kind}' request body has no translation; the request is sent without it").format(
                              kind=kind))
    read_timeout = (data.get("timeout") or {}).get("max_read_timeout")
    if isinstance(read_timeout, int | float) and read_timeout > 0:
        args["timeout"] = read_timeout
    return [*extra, {"tool": "http.request", "with": args}]  # the body is rendered first


def _pairs(t: Translator, node: Node, written: Any) -> dict[str, str]:
    """Dify's `Key:value` lines (headers, params) → a mapping."""
    pairs: dict[str, str] = {}
    for line in str(written or "").splitlines() if not isinstance(written, list) else []:
        key, _colon, value = line.partition(":")
        if key.strip():
            pairs[key.strip()] = t.text(value.strip(), node)
    return pairs


def tool(t: Translator, node: Node) -> list[Step]:
    data = node.data
    key = tool_key(data)
    if (template := as_template(data)) is not None:
        return [{"template": template}]
    if key not in AS_TOOLS:
        return placeholder(t, node, _("Dify tool '{provider}/{name}' has no equivalent here").format(
                                      provider=key[0], name=key[1]))
    ours, names = AS_TOOLS[key]
    params = data.get("tool_parameters") or {}
    args = {}
    for argument, theirs in names.items():
        given = params.get(theirs) or {}
        value = given.get("value") if isinstance(given, dict) else given
        if isinstance(given, dict) and given.get("type") == "variable":
            args[argument] = t.expression(value, node)
        else:
            args[argument] = t.text(value, node)
    return [{"tool": ours, "with": args}]


def answer(t: Translator, node: Node) -> list[Step]:
    return [{"template": t.text(node.data.get("answer", ""), node)}]


def placeholder(t: Translator, node: Node, reason: str) -> list[Step]:
    """A node that cannot be translated: a step with an empty output in its place (the playbook still validates
    and runs; what read it reads nothing), and an entry in the report."""
    t.leave_out(node, reason)
    return [{"template": "", "title": _("not translated: {title} ({kind})").format(title=node.title,
                                                                                 kind=node.type)}]


def is_placeholder(node: Node) -> bool:
    """Whether the node becomes a placeholder step (so its variables are read as its one empty output)."""
    data = node.data
    if node.type == "tool":
        return tool_key(data) not in AS_TOOLS and as_template(data) is None
    if node.type == "code":
        names = [str(v.get("variable")) for v in data.get("variables") or [] if isinstance(v, dict)]
        return str(data.get("code_language") or "python3") != "python3" or any(
            not name.isidentifier() or keyword.iskeyword(name) for name in [*names, *(data.get("outputs") or {})])
    return node.type not in HANDLERS and node.type not in ("start", "end", "if-else", "iteration", "human-input") \
        and not node.type.startswith("trigger-")


HANDLERS: dict[str, Callable[[Translator, Node], list[Step]]] = {
    "llm": llm, "parameter-extractor": parameter_extractor, "question-classifier": question_classifier,
    "template-transform": template_transform, "variable-aggregator": variable_aggregator,
    "variable-assigner": variable_aggregator, "assigner": assigner, "code": code, "http-request": http_request,
    "tool": tool, "answer": answer}
REASONS = {"knowledge-retrieval": N_("knowledge retrieval searches a Dify dataset, which the export does not carry: "
                                     "index its documents with `playbook kb add NAME FOLDER` and search them with a "
                                     "kb.search step (this node is not translated yet)"),
           "agent": N_("agent nodes run Dify marketplace strategies and plugins; write an `agent` step with our "
                       "tools"),
           "document-extractor": N_("document extraction from uploaded files has no translation yet"),
           "list-operator": N_("list operations on files have no translation yet"),
           "loop": N_("a loop inside an iteration has no translation; make the iteration's body a sub-playbook "
                      "with a `goto` loop")}
