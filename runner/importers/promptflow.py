"""A Prompt Flow flow (flow.dag.yaml and the prompt and Python files beside it) → a playbook. `${inputs.x}` and
`${node.output…}` become expressions; an llm node's Jinja prompt becomes its messages (`# system:` / `# user:` /
`# assistant:` markers split it; markers written inside a loop are split when the step runs, with
`role_messages`); a python node becomes a tool of a generated plugin package around the user's function; `activate`
becomes `when`; a node with variants runs its default variant. Pure but for reading the flow's files."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

from runner.dsl.yaml_loader import safe_load
from runner.errors import PlaybookError
from runner.i18n import _
from runner.importers.dify import CodeNode, Imported, ImportRefused, LeftOut
from runner.importers.naming import Names, slug
from runner.importers.promptflow_evals import suite_for

_REFERENCE = re.compile(r"^\$\{([A-Za-z_][\w]*)\.(output|[A-Za-z_][\w]*)((?:\.[\w]+)*)\}$")
_ROLE = re.compile(r"^[ \t]*#[ \t]*(system|user|assistant)[ \t]*:[ \t]*$", re.M | re.I)
_BLOCK = re.compile(r"\{%-?\s*(for|if|endfor|endif|macro|endmacro)\b")
_VARIABLE = re.compile(r"(?<!\$)\{\{(-?)")
_JINJA_CODE = re.compile(r"\{\{(.*?)\}\}|\{%(.*?)%\}", re.S)
_PARAMETERS = {"temperature", "top_p", "presence_penalty", "frequency_penalty", "max_tokens", "seed", "stop"}
_IGNORED = {"deployment_name", "model", "response_format", "logit_bias", "user", "n", "suffix", "echo", "best_of",
            "logprobs", "tool_choice", "tools", "functions", "function_call"}
_TYPES = {"string": "string", "int": "integer", "double": "number", "bool": "boolean", "list": "list",
          "object": "object", "chat_history": "list"}


def translate(flow_file: Path, name: str | None = None) -> Imported:
    try:
        flow = safe_load(flow_file.read_text(encoding="utf-8"), str(flow_file))  # bounded: a YAML bomb is refused
    except UnicodeDecodeError as exc:
        raise ImportRefused(_("not UTF-8 text (byte {start})").format(start=exc.start)) from None
    except PlaybookError as exc:
        raise ImportRefused(exc.diagnostics[0].message) from None
    if not isinstance(flow, dict) or not isinstance(flow.get("nodes"), list):
        raise ImportRefused(_("not a Prompt Flow flow: it has no `nodes:` list"))
    return _Flow(flow, flow_file.parent, name or slug(flow_file.parent.name, "imported")).build()


class _Flow:
    def __init__(self, flow: dict[str, Any], folder: Path, name: str) -> None:
        self.flow, self.folder = flow, folder
        self.names = Names()
        self.ids = {str(n.get("name")): self.names.claim(slug(str(n.get("name")), "step"))
                    for n in flow["nodes"] if isinstance(n, dict)}
        self.result = Imported(name, "", "flow", {}, len(self.ids), origin="promptflow")

    def build(self) -> Imported:
        inputs: dict[str, Any] = {}
        for key, spec in (self.flow.get("inputs") or {}).items():
            spec = spec if isinstance(spec, dict) else {}
            entry: dict[str, Any] = {"type": _TYPES.get(str(spec.get("type") or "string"), "string")}
            if spec.get("description"):
                entry["description"] = str(spec["description"])
            if "default" in spec:
                entry["default"] = spec["default"]
            inputs[str(key)] = entry
        steps = []
        for node in self.flow["nodes"]:
            if isinstance(node, dict):
                steps += self.node(node)
        outputs = {str(key): self.value((spec or {}).get("reference") if isinstance(spec, dict) else spec)
                   for key, spec in (self.flow.get("outputs") or {}).items()}
        if steps and steps[0].get("needs") == []:
            del steps[0]["needs"]  # the first step needs nothing anyway
        self.result.playbook = {"name": self.result.name, "inputs": inputs, "steps": steps, "outputs": outputs}
        self.result.suite, self.result.suite_data = suite_for(self)
        return self.result

    # references ---------------------------------------------------------------------------------------------------
    def expression(self, value: Any) -> str | None:
        """`${inputs.x}` / `${node.output.a}` as an expression, or None for a literal."""
        match = _REFERENCE.match(value.strip()) if isinstance(value, str) else None
        if match is None:
            return None
        head, field, rest = match.groups()
        if head == "inputs":
            return f"inputs.{field}{rest}"
        if head in self.ids:
            return f"steps.{self.ids[head]}.output{rest}"
        return None

    def value(self, value: Any) -> Any:
        expression = self.expression(value)
        return "${{ " + expression + " }}" if expression else value

    # nodes --------------------------------------------------------------------------------------------------------
    def node(self, node: dict[str, Any]) -> list[dict[str, Any]]:
        name = str(node.get("name"))
        if node.get("use_variants"):
            node = self.default_variant(name)
        kind = str(node.get("type") or "")
        step: dict[str, Any] = {"id": self.ids[name]}
        if node.get("aggregation"):
            return [self.left_out(name, kind, _("an aggregation node computes metrics over a batch run's lines; "
                                                 "write it as an eval check (evals/)"))]
        before: list[dict[str, Any]] = []
        if kind in ("llm", "prompt"):
            body = self.prompt_node(name, node, kind, before)
            if body is None:
                return [self.left_out(name, kind, _("its prompt file cannot be read"))]
            step |= body
        elif kind == "python":
            tool = self.python_node(name, node)
            if tool is None:
                return [self.left_out(name, kind, _("its Python file has no function marked @tool"))]
            step |= tool
        else:
            return [self.left_out(name, kind, _("Prompt Flow node type '{kind}' has no translation").format(
                                                  kind=kind))]
        activate = node.get("activate")
        if isinstance(activate, dict) and "when" in activate:
            when = self.expression(activate["when"]) or json.dumps(activate["when"], ensure_ascii=False)
            step["when"] = "${{ " + when + " == " + json.dumps(activate.get("is"), ensure_ascii=False) + " }}"
        needs = self.needs(node)
        for extra in before:  # the rendered prompt a loop of role markers is split from
            extra["needs"] = needs
        step = {"id": step.pop("id"), "needs": [e["id"] for e in before] or needs, **step}
        return [*before, step]

    def needs(self, node: dict[str, Any]) -> list[str]:
        """What the node reads (in file order, the default `needs` is the step before: said explicitly)."""
        read = []
        for value in [*(node.get("inputs") or {}).values(), (node.get("activate") or {}).get("when")]:
            match = _REFERENCE.match(value.strip()) if isinstance(value, str) else None
            if match and match.group(1) in self.ids:
                read.append(self.ids[match.group(1)])
        return list(dict.fromkeys(read))

    def default_variant(self, name: str) -> dict[str, Any]:
        variants = (self.flow.get("node_variants") or {}).get(name) or {}
        default = str(variants.get("default_variant_id") or "")
        others = [v for v in (variants.get("variants") or {}) if v != default]
        if others:
            self.result.notes.append(_("step '{step}' runs its default variant, {default}; the eval suite compares "
                                       "it with {others}").format(step=self.ids[name], default=default,
                                                                  others=", ".join(others)))
        chosen = ((variants.get("variants") or {}).get(default) or {}).get("node") or {}
        return {"name": name, **chosen}

    def left_out(self, name: str, kind: str, reason: str) -> dict[str, Any]:
        self.result.left_out.append(LeftOut(name, name, kind, reason))
        return {"id": self.ids[name], "title": _("not translated: {title} ({kind})").format(title=name, kind=kind),
                "template": ""}

    def prompt_node(self, name: str, node: dict[str, Any], kind: str,
                    before: list[dict[str, Any]]) -> dict[str, Any] | None:
        path = self.folder / str((node.get("source") or {}).get("path") or "")
        try:
            template = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        inputs = node.get("inputs") or {}
        variables = {k: v for k, v in inputs.items() if kind == "prompt" or k not in _PARAMETERS | _IGNORED}
        def sets(text: str) -> str:
            """The node's inputs this text uses, set from their values at its top."""
            code = " ".join(a + b for a, b in _JINJA_CODE.findall(text))  # what its expressions and statements use
            return "".join("{% set " + str(k) + " = " + (self.expression(v) or json.dumps(v, ensure_ascii=False)) +
                           " %}" for k, v in variables.items() if re.search(rf"\b{re.escape(str(k))}\b", code))

        def ours(text: str) -> str:
            return sets(text) + _VARIABLE.sub(lambda m: "${{" + m.group(1), text)

        if kind == "prompt":
            return {"template": ours(template)}
        body: dict[str, Any] = {}
        parts = _ROLE.split(template)
        dynamic = any(_depth(template[:m.start()]) for m in _ROLE.finditer(template))
        if dynamic or len(parts) < 3:  # one text, or markers inside a loop: split after rendering
            text = ours(template)
            if len(parts) < 3:
                body["prompt"] = text.strip()
            else:
                rendered = self.names.claim(f"{self.ids[name]}_prompt")
                before.append({"id": rendered, "title": _("{name}'s prompt, rendered").format(name=name),
                               "template": text})
                body["history"] = "${{ steps." + rendered + ".output | role_messages }}"
        else:
            messages = [{"role": role.lower(), "content": ours(content.strip())}
                        for role, content in zip(parts[1::2], parts[2::2], strict=True)]
            while messages and messages[0]["role"] == "system":
                body["system"] = "\n\n".join(filter(None, [body.get("system"), messages.pop(0)["content"]]))
            if messages and messages[-1]["role"] == "user":
                body["prompt"] = messages.pop()["content"]
            if messages:
                body["messages"] = messages
        for key in sorted(_PARAMETERS & set(inputs)):
            body[key] = _number(inputs[key]) if key != "stop" else inputs[key]
        if node.get("connection"):
            said = _("the flow's llm nodes used the connection '{connection}': every llm step here calls `default` "
                     "— point [models.default] in playbook.toml at that model").format(connection=node["connection"])
            if said not in self.result.notes:
                self.result.notes.append(said)
        return {"llm": body}

    def python_node(self, name: str, node: dict[str, Any]) -> dict[str, Any] | None:
        path = self.folder / str((node.get("source") or {}).get("path") or "")
        try:
            code = path.read_text(encoding="utf-8")
            tree = ast.parse(code)
        except (OSError, UnicodeDecodeError, SyntaxError):
            return None
        function = next((f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
                         and any(_is_tool(d) for d in f.decorator_list)), None)
        if function is None:
            return None
        step = self.ids[name]
        arguments = {str(k): self.value(v) for k, v in (node.get("inputs") or {}).items()}
        self.result.code.append(CodeNode(step, name, name, code, list(arguments), None, function=function))
        return {"tool": f"{self.result.name}.{step}", **({"with": arguments} if arguments else {})}


def _is_tool(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return (isinstance(target, ast.Name) and target.id == "tool") or (
        isinstance(target, ast.Attribute) and target.attr == "tool")


def _depth(text: str) -> int:
    """How many `{% for %}` / `{% if %}` blocks are open at the end of `text`."""
    depth = 0
    for match in _BLOCK.finditer(text):
        depth += -1 if match.group(1).startswith("end") else 1
    return max(depth, 0)


def _number(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return int(value) if value.strip().isdigit() else float(value)
        except ValueError:
            return value
    return value
