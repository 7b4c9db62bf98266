"""What labels a value a person reads: the JSON Schema (with its `title`s) of each step's output, of the
run's inputs and outputs, and of a tool argument written as one expression — so the console, the run page
and a written workbook say 主题 / 评论数 where the data says `themes` / `count`.

Everything here is worked out from the playbook alone (no run needed); a value whose origin cannot be
traced statically simply has no schema and is shown under its key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from runner.dsl.spec import InputSpec
from runner.registry import get_tool, tool_names

_WHOLE = re.compile(r"^\s*\$\{\{(.*)\}\}\s*$", re.S)
_PATH = re.compile(r"^\s*steps\.(\w+)((?:\.\w+)*)\s*$")
_STEP = re.compile(r"\bsteps\.(\w+)")
_LAST_FIELD = re.compile(r"\)\s*\.(\w+)\s*$")
_CLAUSE_END = re.compile(r"[（(，,；;。:：]")
NO_SCHEMAS: dict[str, Any] = {"steps": {}, "inputs": {}, "outputs": {}}  # nothing to label with
SHORT = 20  # a description longer than this (to its first clause end) is a sentence, not a label


def step_schemas(playbook: Any) -> dict[str, Any]:
    """Each step's output schema (`playbook`: a validated runner.dsl.validate.Playbook): an LLM step's declared
    output (a map's: the list of them), a tool's output model."""
    schemas: dict[str, Any] = {}
    for step in playbook.spec.steps:
        if step.id in playbook.output_schemas:
            schema = playbook.output_schemas[step.id]
            schemas[step.id] = {"type": "array", "items": schema} if step.map is not None else schema
        info = get_tool(step.tool) if step.tool in tool_names() else None
        if info is not None and info.output_model is not None and step.map is None:
            schemas[step.id] = without_made_up_titles(inline_refs(info.output_model.model_json_schema()))
    return schemas


def without_made_up_titles(schema: Any) -> Any:
    """A pydantic schema without the titles pydantic made from names (`path` → "Path", the model's class name):
    they would label an output `workbook` as "Path". Titles a tool author wrote stay."""
    if isinstance(schema, list):
        return [without_made_up_titles(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    kept = {k: without_made_up_titles(v) for k, v in schema.items() if k != "properties"}
    if "properties" in schema:
        kept.pop("title", None)  # a model's class name
    if isinstance(schema.get("properties"), dict):
        kept["properties"] = {}
        for name, field in schema["properties"].items():
            field = without_made_up_titles(field)
            if isinstance(field, dict) and field.get("title") == name.replace("_", " ").title():
                field = {k: v for k, v in field.items() if k != "title"}
            kept["properties"][name] = field
    return kept


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON Schema with its `$ref`s replaced by the definitions (pages walk it field by field)."""
    defs = schema.get("$defs", {})

    def walk(node: Any, depth: int = 0) -> Any:
        if isinstance(node, dict):
            if "$ref" in node and depth < 20:  # a recursive model stops being expanded here
                return walk(defs.get(node["$ref"].split("/")[-1], {}), depth + 1)
            return {k: walk(v, depth) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [walk(v, depth) for v in node]
        return node

    return dict(walk(schema))


def _property(schema: Any, name: str) -> Any:
    return (schema.get("properties") or {}).get(name) if isinstance(schema, dict) else None


def expression_schema(value: Any, schemas: Mapping[str, Any], key: str | None = None) -> Any:
    """The schema of a value written as one expression: `${{ steps.X.output.f }}`, `${{ steps.X.items }}` (a
    map's list) or the shorthand `${{ steps.X.f }}`. Anything else — `(steps.a.output or steps.b.output).f`
    included — gets the schema of field `f` (or of `key`) of the first step it names that has one; None
    when there is nothing to go by."""
    whole = _WHOLE.match(value) if isinstance(value, str) else None
    if whole is None:
        return None
    expression = whole.group(1)
    if (path := _PATH.match(expression)) is not None and path.group(1) in schemas:
        schema = schemas[path.group(1)]
        fields = [f for f in path.group(2).split(".") if f]
        if fields[:1] in (["output"], ["items"]):
            fields = fields[1:]
        for name in fields:
            schema = _property(schema, name)
        return schema
    last = _LAST_FIELD.search(expression)
    name = last.group(1) if last else key
    for step in _STEP.findall(expression):
        if name and (found := _property(schemas.get(step), name)) is not None:
            return found
    return None


def input_title(name: str, spec: InputSpec) -> str:
    """An input's label: its `title`, else its description when that is short (to the first clause:
    `评论文件（csv/xlsx/jsonl）…` → `评论文件`), else its name."""
    if spec.title:
        return spec.title
    head = _CLAUSE_END.split(spec.description or "", maxsplit=1)[0].strip()
    return head if head and len(head) <= SHORT else name


def playbook_schemas(playbook: Any) -> dict[str, Any]:
    """`{"steps": {...}, "inputs": {...}, "outputs": {...}}`: the schemas that label a run of a (validated)
    playbook."""
    steps = playbook.step_schemas
    inputs = {name: {"title": input_title(name, spec)} for name, spec in playbook.spec.inputs.items()}
    outputs = {}
    titles = playbook.spec.output_titles
    for name, value in playbook.spec.output_values.items():
        schema = expression_schema(value, steps, key=name)
        if name in titles:  # the playbook's own label wins over the field's
            outputs[name] = {**(schema if isinstance(schema, dict) else {}), "title": titles[name]}
        elif isinstance(schema, dict):
            outputs[name] = schema
    return {"steps": steps, "inputs": {"type": "object", "properties": inputs},
            "outputs": {"type": "object", "properties": outputs}}
