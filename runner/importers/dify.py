"""A Dify app's DSL (a workflow or a chatflow, DSL 0.1.x–0.3.x) → a playbook, as data, and the list of what could
not be translated. References `{{#node.var#}}` become `${{ steps.<id>.output.<var> }}` / `${{ inputs.<var> }}`,
node ids become readable step ids, and what a node reads is its `needs`. This module reads a node's references;
runner/importers/dify_steps.py (`translate`) builds the playbook, runner/importers/dify_nodes.py each node's steps.
Pure: the caller reads and writes the files (runner/importers/write.py)."""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.i18n import _
from runner.importers.code_tool import distribution
from runner.importers.dify_graph import BRANCHING, Graph, Node, read_graph
from runner.importers.dify_tools import as_template
from runner.importers.naming import Names, slug

SUPPORTED = ("0.1", "0.2", "0.3")  # DSL versions the translation was written against
_REFERENCE = re.compile(r"\{\{#([^#{}]+?)#\}\}")
CHAT_ONLY = {"conversation_id", "dialogue_count"}  # sys.* a single run has no value for


class ImportRefused(ValueError):
    """A file this importer cannot translate at all (not a Dify app, not a workflow): the message says why."""


@dataclass
class LeftOut:
    node: str
    title: str
    kind: str
    reason: str


@dataclass
class CodeNode:
    step: str
    node: str
    title: str
    code: str
    arguments: list[str]
    outputs: dict[str, str] | None  # name → Dify type (string, number, object, array[string] …); None: any value
    function: str = "main"


@dataclass
class Imported:
    name: str
    version: str
    mode: str
    playbook: dict[str, Any]
    nodes: int  # work nodes on the canvas
    left_out: list[LeftOut] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the user must do (set a secret, point a model)
    canvas_notes: list[str] = field(default_factory=list)
    code: list[CodeNode] = field(default_factory=list)
    origin: str = "dify"  # or "promptflow"
    suite: dict[str, Any] | None = None  # an eval suite for it (a Prompt Flow flow's variants, data and evaluation)
    suite_data: Path | None = None  # the data file the suite's dataset reads, to copy beside it

    @property
    def packages(self) -> list[str]:
        """What the code nodes import beyond the standard library (their tool package depends on it)."""
        return sorted({name for node in self.code for name in third_party_imports(node.code)} - {"promptflow"})

    @property
    def translated(self) -> int:
        return self.nodes - len({entry.node for entry in self.left_out})


class Translator:
    def __init__(self, app: dict[str, Any]) -> None:
        if not isinstance(app, dict) or ("workflow" not in app and "app" not in app):
            raise ImportRefused(_("not a Dify app export: it has no `app:` or `workflow:` section"))
        self.meta = app.get("app") or {}
        self.mode = str(self.meta.get("mode") or "workflow")
        if self.mode not in ("workflow", "advanced-chat") or not isinstance(app.get("workflow"), dict):
            raise ImportRefused(_("a Dify '{mode}' app has no workflow to translate; only workflow and chatflow "
                                  "(advanced-chat) apps can be imported").format(mode=self.mode))
        self.version = str(app.get("version") or "")
        self.workflow: dict[str, Any] = app["workflow"]
        self.graph: Graph = read_graph(self.workflow)
        self.name = slug(str(self.meta.get("name") or ""), "imported")
        self.names = Names()
        self.step_of: dict[str, str] = {}  # node → the step whose output its variables are read from
        self.exit_of: dict[str, str] = {}  # node → the step its successors need (a classifier's route)
        self.inputs: dict[str, dict[str, Any]] = {}
        self.secrets: list[str] = []
        self.assigned: dict[str, list[tuple[str, str, str | None]]] = {}  # conversation var → (node, step, field)
        self.result = Imported(self.name, self.version, self.mode, {}, 0)
        self.models: dict[str, int] = {}
        self.placeholders: set[str] = set()  # nodes that become a placeholder step (filled in by build)
        self.outer_binds: dict[str, dict[str, str]] = {}  # iteration → {name in its body: the outer value}
        self.loop_heads: dict[str, str] = {}  # loop node → its first step (the one its passes count)
        self.loop_exits: dict[str, str] = {}  # loop node → the step after its passes
        for node in self.graph.nodes.values():
            if node.type not in ("start",):
                self.step_of[node.id] = self.exit_of[node.id] = self.names.claim(slug(node.title, node.type or "step"))

    # references -------------------------------------------------------------------------------------------------
    def reference(self, selector: Any, reader: Node, *, text: bool = True) -> str:
        """A Dify value selector ([node, var, …]) as an expression read by `reader`."""
        parts = [str(p) for p in selector] if isinstance(selector, list) else str(selector or "").split(".")
        if len(parts) < 2:
            return "none"
        head, var, rest = parts[0], parts[1], parts[2:]
        if head == "sys":
            return self.system_variable(var, reader)
        if head == "env":
            return self.environment_variable(var)
        if head == "conversation":
            return self.conversation_variable(var, reader)
        node = self.graph.nodes.get(head)
        if node is None:
            self.leave_out(reader, _("reads `{selector}`, a node that is not in the file").format(
                                       selector=".".join(parts)))
            return "none"
        if node.type == "start":
            return self.start_variable(node, var, rest, reader)
        if node.type == "loop":
            return self.loop_value(node, var, rest, reader)
        if reader.parent is not None and head == reader.parent:  # the iteration's own item and index
            if var == "item":
                return ".".join(["item", *rest])
            self.leave_out(reader, _("reads the iteration's `{var}`, which a map does not give").format(var=var))
            return "none"
        path = self.output_path(node, var, rest)
        if reader.parent is not None and node.parent != reader.parent and self.in_iteration(reader):
            # outside an iteration's body: given to it through `with:` (a loop's body is steps of the playbook)
            return self.bind_outer(reader.parent, path, reader)
        guarded = path.count(".") > 2 and not self.graph.surely_before(node.id, reader.id)
        fallback = "''" if text else "none"  # off the path taken: Dify reads an empty value
        return f"{path} | default({fallback})" if guarded else path

    def output_path(self, node: Node, var: str, rest: list[str]) -> str:
        """Where a node's variable lives in its step's output."""
        base = f"steps.{self.step_of[node.id]}.output"
        if node.id in self.placeholders or (node.type == "tool" and as_template(node.data) is not None):
            return base  # a placeholder, or a tool that became a template step: its one output is the value
        whole = {"llm": "text", "template-transform": "output", "variable-aggregator": "output",
                 "iteration": "output", "knowledge-retrieval": "result", "agent": "text",
                 "document-extractor": "text", "list-operator": "result", "answer": "answer"}
        if node.type == "llm" and var == "structured_output":
            return ".".join([base, *rest])
        if whole.get(node.type) == var:
            return ".".join([base, *rest])
        if node.type == "variable-aggregator":  # grouped: {{#agg.group.output#}}
            return ".".join([base, var])
        if node.type == "http-request":
            return ".".join([base, {"body": "text", "status_code": "status_code"}.get(var, var), *rest])
        if node.type == "question-classifier":
            return f"{base}.class_name"
        if node.type == "tool":
            return ".".join([base, "text" if var == "text" else var, *rest])
        return ".".join([base, var, *rest])

    def start_variable(self, start: Node, var: str, rest: list[str], reader: Node) -> str:
        """An input; a Dify file variable's attributes read from its path, the only thing a file input is."""
        declared = next((v for v in start.data.get("variables") or []
                         if isinstance(v, dict) and v.get("variable") == var), {})
        if declared.get("type") != "file" or not rest:
            return ".".join(["inputs", var, *rest])
        attribute = rest[0]
        if attribute in ("url", "remote_url", "path"):
            return f"inputs.{var}"
        if attribute in ("name", "filename"):
            return f"inputs.{var}.replace('\\\\', '/').split('/')[-1]"
        if attribute == "extension":
            return f"'.' + inputs.{var}.rsplit('.', 1)[-1].lower()"
        self.leave_out(reader, _("reads the file's `{attribute}`, which a file input (a path) does not carry; it "
                                 "became null — read the file with a tool instead").format(attribute=attribute))
        return "none"

    def system_variable(self, var: str, reader: Node) -> str:
        if var in CHAT_ONLY:
            self.leave_out(reader, _("reads `sys.{var}`, which only a chat conversation has; it became input "
                                     "'{var}'").format(var=var))
        known: dict[str, dict[str, Any]] = {
            "query": {"type": "string", "title": "用户输入", "description": "the user's message (Dify: sys.query)"},
            "files": {"type": "list", "default": [], "description": "files given with the message (Dify: "
                                                                   "sys.files): paths or URLs"},
            "dialogue_count": {"type": "integer", "default": 0}}
        spec = known.get(var, {"type": "string", "default": "", "description": f"Dify: sys.{var}"})
        self.inputs.setdefault(var, spec)
        return f"inputs.{var}"

    def environment_variable(self, var: str) -> str:
        for item in self.workflow.get("environment_variables") or []:
            if isinstance(item, dict) and item.get("name") == var and item.get("value_type") == "secret":
                if var not in self.secrets:
                    self.secrets.append(var)
                    self.result.notes.append(_("secret '{var}' is read from the environment variable {var}; set "
                                               "it before a run (its value was not copied)").format(var=var))
                return f"secrets.{var}"
        value = next((item.get("value") for item in self.workflow.get("environment_variables") or []
                      if isinstance(item, dict) and item.get("name") == var), "")
        self.inputs.setdefault(var, {"type": "number" if isinstance(value, int | float) else "string",
                                     "default": value, "description": f"Dify environment variable {var}"})
        return f"inputs.{var}"

    def conversation_variable(self, var: str, reader: Node) -> str:
        """A conversation variable: an input (its starting value) unless an assigner before the reader wrote it."""
        declared = next((v for v in self.workflow.get("conversation_variables") or []
                         if isinstance(v, dict) and v.get("name") == var), {})
        kind = str(declared.get("value_type") or "string")
        self.inputs.setdefault(var, {"type": "list" if kind.startswith("array") else
                                     {"number": "number", "object": "object"}.get(kind, "string"),
                                     "default": declared.get("value", [] if kind.startswith("array") else ""),
                                     "description": declared.get("description") or f"Dify conversation variable "
                                                                                   f"{var}"})
        for node_id, step, key in reversed(self.assigned.get(var, [])):
            if node_id != reader.id and self.graph.surely_before(node_id, reader.id):
                return f"steps.{step}.output" + (f".{key}" if key else "")
        return f"inputs.{var}"

    def loop_value(self, loop: Node, var: str, rest: list[str], reader: Node) -> str:
        """A loop variable: after the loop, the loop's last step's; in the body, the head step's (its value as the
        pass began) unless an assigner surely ran before the reader in this pass; in the loop's own steps (the
        break condition), the value its last assigner wrote if one ran, else its starting value. `index`: the
        pass, from 0."""
        head = self.loop_heads.get(loop.id, self.step_of[loop.id])
        writers = self.loop_writers(loop.id, var)
        if reader.parent != loop.id and reader.id != loop.id and loop.id in self.loop_exits:
            # `| default`: validate cannot tell the loop's last step runs on every path when an "exit loop"
            # branch also leads to it
            return ".".join([f"steps.{self.loop_exits[loop.id]}.output", var, *rest]) + " | default(none)"
        if reader.parent == loop.id and var != "index" and not any(
                self.graph.surely_before(node, reader.id) for node, _step, _field in writers):
            return ".".join([f"steps.{head}.output", var, *rest])
        declared = next((v for v in loop.data.get("loop_variables") or []
                         if isinstance(v, dict) and v.get("label") == var), None)
        if declared is None:
            if var == "index":
                return f"(steps.{head}.visits - 1)"
            self.leave_out(reader, _("reads `{var}` of loop '{title}', which is not one of its variables").format(
                                       var=var, title=loop.title))
            return "none"
        if declared.get("value_type") == "variable":
            value = self.reference(declared.get("value"), loop, text=False)
        else:
            value = _constant(declared.get("value"), str(declared.get("var_type") or "string"))
        for _node, step, field_name in writers:
            read = f"steps.{step}.output" + (f".{field_name}" if field_name else "")
            value = f"({read} if steps.{step}.status == 'done' else {value})"
        return ".".join([value, *rest]) if rest else value

    def loop_writers(self, loop: str, var: str) -> list[tuple[str, str, str | None]]:
        """The assigners in a loop's body that write `var` of the loop, in order: node, step, and where in the
        step's output the value is (None: the output is the value, as when an assigner writes one variable)."""
        writers = []
        for node in self.graph.inside(loop):
            if node.type != "assigner":
                continue
            targets = [[str(p) for p in item.get("variable_selector") or []]
                       for item in node.data.get("items") or [] if isinstance(item, dict)]
            if [loop, var] in targets:
                writers.append((node.id, self.step_of[node.id], None if len(targets) == 1 else var))
        return writers

    def in_iteration(self, reader: Node) -> bool:
        container = self.graph.nodes.get(reader.parent or "")
        return container is not None and container.type == "iteration"

    def bind_outer(self, container: str, path: str, reader: Node) -> str:
        """An outer value read inside an iteration body: given to the body under a name through `with:`."""
        binds = self.outer_binds.setdefault(container, {})
        for name, bound in binds.items():
            if bound == path:
                return name
        name = self.names.claim(path.replace("steps.", "").replace(".output", "").replace(".", "_")[:30])
        binds[name] = path
        return name

    def text(self, value: Any, reader: Node) -> str:
        """Dify text with `{{#node.var#}}` references → a template; a literal `{%` or `${{` is kept literal."""
        written = str(value or "")
        written = written.replace("${{", "${{ '${{' }}").replace("{%", "${{ '{%' }}")
        return _REFERENCE.sub(lambda m: m.group(0) if m.group(1) == "context" else  # an llm node's context slot
                              "${{ " + self.reference(m.group(1).split("."), reader) + " }}", written)

    def expression(self, selector: Any, reader: Node) -> str:
        return "${{ " + self.reference(selector, reader, text=False) + " }}"

    def leave_out(self, node: Node, reason: str) -> None:
        entry = LeftOut(node.id, node.title, node.type, reason)
        if entry not in self.result.left_out:  # a node reading `sys.dialogue_count` in five conditions: said once
            self.result.left_out.append(entry)

    def model(self, node: Node) -> None:
        model = node.data.get("model") or {}
        if model.get("name"):
            key = f"{model.get('provider', '')}/{model['name']}".strip("/")
            self.models[key] = self.models.get(key, 0) + 1

    def is_branching(self, node_id: str) -> bool:
        node = self.graph.nodes.get(node_id)
        return node is not None and node.type in BRANCHING


def _constant(value: Any, kind: str) -> str:
    """A loop variable's starting value written in Dify (text, even for a number or an array) as an expression."""
    if isinstance(value, str) and kind != "string":
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(value)
    if value is None or value == "":
        value = {"number": 0, "object": {}}.get(kind, [] if kind.startswith("array") else "")
    return literal(value)


def literal(value: Any) -> str:
    """A JSON-like value as an expression literal (`none`, `true`, not JSON's `null`, `true`)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)}: {literal(v)}" for k, v in value.items()) \
            + "}"
    return json.dumps(value, ensure_ascii=False)


def third_party_imports(code: str) -> set[str]:
    """Top-level modules `code` imports from outside the standard library, as distribution names (usually the
    module's, `_` written `-`)."""
    import ast
    import sys

    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    names = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    names |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
              and node.module and not node.level}
    return {distribution(name) for name in names if name not in sys.stdlib_module_names}
