"""The `tool` step: one call of a registered tool (runner/registry.py) with the arguments under `with:`. Validate
checks the arguments it can know now against the tool's input model; those with a template are checked when it runs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pydantic
from pydantic import BaseModel, TypeAdapter

from runner.dsl import templates
from runner.dsl.kinds.base import KindChecker, StepKind, StepLike, Text
from runner.errors import did_you_mean
from runner.i18n import N_, _
from runner.messages import merged
from runner.registry import get_tool, tool_names


def texts(step: StepLike, tool: str) -> Iterator[Text]:
    yield ("with",), step.with_, step.map is not None


def check(checker: KindChecker, i: int, step: StepLike, tool: str) -> None:
    tools = tool_names()
    if tool not in tools:
        checker.error(("steps", i, "tool"),
                   _("step '{step}': unknown tool '{tool}'{hint}").format(
                       step=step.id, tool=tool, hint=did_you_mean(tool, tools)))
        return
    model = get_tool(tool).input_model
    args = step.with_ or {}
    fields = {f.alias or n: f for n, f in model.model_fields.items()}
    for name, value in args.items():
        where = ("steps", i, "with", name)
        if name not in fields:
            said = _("step '{step}': tool '{tool}' has no argument '{name}'{hint}").format(
                step=step.id, tool=tool, name=name, hint=did_you_mean(name, fields))
            checker.error(where, said, key=True)
        elif not has_template(value):
            annotation: Any = fields[name].annotation  # None-able in pydantic's stubs; a field always has one
            try:
                TypeAdapter(annotation).validate_python(value)
            except pydantic.ValidationError as exc:
                first = merged(exc.errors())[0][1]
                checker.error(where, _("step '{step}': argument '{name}' of '{tool}': {first}").format(
                                      step=step.id, name=name, tool=tool, first=first))
    for name, f in fields.items():
        if f.is_required() and name not in args:
            checker.error(("steps", i, "with") if step.with_ else ("steps", i, "tool"),
                       _("step '{step}': tool '{tool}' needs argument '{name}'").format(
                           step=step.id, tool=tool, name=name))
    for problem in whole_model_problems(model, args, fields):
        checker.error(("steps", i, "with") if step.with_ else ("steps", i, "tool"),
                   _("step '{step}': {tool}: {problem}").format(
                       step=step.id, tool=tool, problem=problem))


# a value of each declared input type that pydantic's coercions cannot pass off as another type's: a string input
# given to a number argument holds text (a numeric string would pass; then declare the input a number). Lists and
# objects are left out: what their items hold is not declared.
_WITNESSES: dict[str, Any] = {"string": "文本", "integer": 7, "number": 7.5, "boolean": True}


def declared_type_problems(step: StepLike, tool: str, inputs: Mapping[str, Any],
                           text_steps: set[str]) -> Iterator[tuple[str, str]]:
    """Arguments given one whole `${{ inputs.<name> }}` whose declared type (or one of its `enum` values) the
    argument refuses — a text input for a number, a choice the argument does not have — or one whole
    `${{ steps.<id>.output }}` of a step that answers text (an llm or agent step without `output:`) for an argument
    that takes no text: known before any call, so not left to fail when the step runs (after the paid calls before
    it). `inputs`: the playbook's input specs; `text_steps`: the steps that answer text. Yields (argument, message)."""
    if tool not in tool_names():
        return
    fields = {f.alias or n: f for n, f in get_tool(tool).input_model.model_fields.items()}
    for name, value in (step.with_ or {}).items():
        expr = templates.lone_expression(value) if isinstance(value, str) and name in fields else None
        parts = expr.split(".") if expr else []
        annotation: Any = fields[name].annotation if name in fields else None
        if len(parts) == 3 and parts[0] == "steps" and parts[1] in text_steps and parts[2] == "output":
            first = _refusal(annotation, ["模型回答的文字"])  # what such a step's output holds
            if first:
                yield name, _("step '{step}': argument '{name}' of '{tool}' is given `{expr}`, the text step "
                              "'{source}' answers: {first}; give '{source}' an `output:` schema with the field to "
                              "pass, or pass another value").format(step=step.id, name=name, tool=tool, expr=expr,
                                                                    source=parts[1], first=first)
            continue
        spec = inputs.get(parts[1]) if len(parts) == 2 and parts[0] == "inputs" else None
        if spec is None or (not spec.enum and spec.type not in _WITNESSES):
            continue
        first = _refusal(annotation, spec.enum or [_WITNESSES[spec.type]])
        if first:
            yield name, _("step '{step}': argument '{name}' of '{tool}' is given input '{input}', declared "
                          "{declared}: {first}; declare the input with the type (or the choices) the argument "
                          "takes, or convert it in the template").format(
                            step=step.id, name=name, tool=tool, input=parts[1], declared=spec.type, first=first)


def _refusal(annotation: Any, witnesses: list[Any]) -> str | None:
    """What the argument's type says of the first witness it refuses; None when it takes them all."""
    adapter: Any = TypeAdapter(annotation)
    for witness in witnesses:
        try:
            adapter.validate_python(witness)
        except pydantic.ValidationError as exc:
            return str(merged(exc.errors())[0][1])
    return None


_PROBES: tuple[Any, ...] = ("x", 1, 1.0, True, [], {}, "https://example.com/")


def whole_model_problems(model: type[BaseModel], args: dict[str, Any], fields: dict[str, Any]) -> list[str]:
    """What the tool's own checks across arguments say (`json` and `form` both given): the arguments with a template
    stand in as a value their field accepts, so only what the constant arguments decide is reported."""
    probe: dict[str, Any] = {}
    for name, value in args.items():
        if name not in fields:
            return []  # reported on its own
        if not has_template(value):
            probe[name] = value
            continue
        adapter: Any = TypeAdapter(fields[name].annotation)
        for candidate in _PROBES:
            try:
                adapter.validate_python(candidate)
            except pydantic.ValidationError:
                continue
            probe[name] = candidate
            break
        else:
            return []
    try:
        model.model_validate(probe)
    except pydantic.ValidationError as exc:
        return [message for where, message in merged(exc.errors()) if not where]
    return []


def has_template(value: Any) -> bool:
    if isinstance(value, dict):
        return any(has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(has_template(v) for v in value)
    return templates.is_template(value)


KIND = StepKind("tool", str, N_("kind|tool"), "tool name, e.g. sheet.read", takes_with=True, texts=texts,
                check=check)
