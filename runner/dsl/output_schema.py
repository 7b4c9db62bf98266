"""`output:` schemas — compact or full JSON Schema — to JSON Schema and to pydantic models.

Compact form: `string | integer | number | boolean | object | any` (a trailing `?` makes a field
optional), `{enum: [...]}`, `[type]` for lists, and nested maps `{field: type}`. A field that needs more
is a mapping with `type:` — `{type: integer, min: 1, max: 10, title: 吸引力}`,
`{type: string, max_length: 40}`, `{type: list, items: {need: string}, min_items: 1, max_items: 5}` — and
`title:` (the label pages and forms show) or `description:` go on any of them, `{enum: [...]}` included.
"""

from __future__ import annotations

import functools
import operator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from runner.i18n import _

_SCALARS: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool}
_COMPACT_NAMES = {*_SCALARS, "object", "any"}
_JSON_TYPES = {*_SCALARS, "object", "array", "null"}
_JSON_KEYWORDS = {"type", "properties", "required", "items", "enum", "description", "title",
                  "additionalProperties", "minItems", "maxItems", "minimum", "maximum", "minLength",
                  "maxLength", "pattern", "$schema", "format", "default", "const", "anyOf"}


# compact keyword → JSON Schema keyword
_BOUNDS = {"min": "minimum", "max": "maximum", "min_length": "minLength", "max_length": "maxLength",
           "min_items": "minItems", "max_items": "maxItems"}
_LABELS = ("title", "description")
_FIELD_KEYS = {"type", "items", *_BOUNDS, *_LABELS}
_APPLIES = {"minimum": ("integer", "number"), "maximum": ("integer", "number"), "minLength": ("string",),
            "maxLength": ("string",), "minItems": ("array",), "maxItems": ("array",)}


class SchemaError(ValueError):
    """An `output:` schema that cannot be understood; the message says where and why."""


def is_json_schema(spec: Any) -> bool:
    if not isinstance(spec, dict):
        return False
    if "$schema" in spec or "properties" in spec:
        return True
    return spec.get("type") in _JSON_TYPES and set(spec) <= _JSON_KEYWORDS


def to_json_schema(spec: Any, where: str = "output") -> dict[str, Any]:
    """Compact or JSON Schema → JSON Schema (objects closed, all compact fields required)."""
    if is_json_schema(spec):
        return dict(spec)
    if isinstance(spec, str):
        name, optional = spec.rstrip("?"), spec.endswith("?")
        if name not in _COMPACT_NAMES:
            close = [n for n in _COMPACT_NAMES if n[:3] == name[:3]]
            hint = _(" (did you mean '{name}'?)").format(name=close[0]) if close else ""
            raise SchemaError(_("{where}: unknown type '{spec}'{hint}; use one of {joined}").format(
                                  where=where, spec=spec, hint=hint, joined=', '.join(sorted(_COMPACT_NAMES))))
        schema: dict[str, Any] = {} if name == "any" else {"type": name}
        return {**schema, "x-optional": True} if optional else schema
    if isinstance(spec, list):
        if len(spec) != 1:
            raise SchemaError(_("{where}: a list type is written [type] with exactly one element").format(
                                  where=where))
        return {"type": "array", "items": to_json_schema(spec[0], f"{where}[]")}
    if isinstance(spec, dict):
        if "enum" in spec and set(spec) <= {"enum", *_LABELS}:
            if not isinstance(spec["enum"], list) or not spec["enum"]:
                raise SchemaError(_("{where}: enum needs a non-empty list of values").format(where=where))
            return {"enum": list(spec["enum"]), **_labels(spec, where)}
        if isinstance(spec.get("type"), str) and set(spec) <= _FIELD_KEYS and \
                spec["type"].rstrip("?") in (*_COMPACT_NAMES, "list"):
            return _field(spec, where)
        if not spec:
            raise SchemaError(_("{where}: an object schema needs at least one field").format(where=where))
        props: dict[str, Any] = {}
        required: list[str] = []
        for key, sub in spec.items():
            child = to_json_schema(sub, f"{where}.{key}")
            if not child.pop("x-optional", False):
                required.append(str(key))
            props[str(key)] = child
        return {"type": "object", "properties": props, "required": required,
                "additionalProperties": False}
    raise SchemaError(_("{where}: expected a type name, [type], {{enum: [...]}} or a mapping of fields").format(
                          where=where))


def _labels(spec: dict[str, Any], where: str) -> dict[str, str]:
    for key in _LABELS:
        if key in spec and not isinstance(spec[key], str):
            raise SchemaError(_("{where}: {key} is text, the label people see (got {name!r})").format(
                                  where=where, key=key, name=spec[key]))
    return {key: spec[key] for key in _LABELS if key in spec}


def _field(spec: dict[str, Any], where: str) -> dict[str, Any]:
    """`{type: integer, min: 1, max: 10, title: …}` and `{type: list, items: …, min_items: 1}`."""
    name = spec["type"].rstrip("?")
    schema: dict[str, Any]
    if name == "list":
        if "items" not in spec:
            raise SchemaError(_("{where}: a list needs `items:` — the type of each element").format(where=where))
        schema = {"type": "array", "items": to_json_schema(spec["items"], f"{where}[]")}
    elif "items" in spec:
        raise SchemaError(_("{where}: `items:` belongs to `type: list`, not `type: {name}`").format(
                              where=where, name=name))
    else:
        schema = to_json_schema(name, where)
    for key, keyword in _BOUNDS.items():
        if key not in spec:
            continue
        value = spec[key]
        if schema.get("type") not in _APPLIES[keyword]:
            fits = " or ".join("list" if k == "array" else k for k in _APPLIES[keyword])
            raise SchemaError(_("{where}: {key} applies to {fits}, not {name}").format(
                                  where=where, key=key, fits=fits, name=name))
        if isinstance(value, bool) or not isinstance(value, int | float) or \
                (keyword not in ("minimum", "maximum") and (not isinstance(value, int) or value < 0)):
            kind = "a number" if keyword in ("minimum", "maximum") else "a whole number ≥ 0"
            raise SchemaError(_("{where}: {key} must be {kind} (got {value!r})").format(
                                  where=where, key=key, kind=kind, value=value))
        schema[keyword] = value
    for low, high in (("minimum", "maximum"), ("minLength", "maxLength"), ("minItems", "maxItems")):
        if low in schema and high in schema and schema[low] > schema[high]:
            raise SchemaError(_("{where}: the lower bound {low} is above the upper bound {high}").format(
                                  where=where, low=schema[low], high=schema[high]))
    schema.update(_labels(spec, where))
    return {**schema, "x-optional": True} if spec["type"].endswith("?") else schema


def to_model(schema: dict[str, Any], name: str = "Output") -> type[BaseModel]:
    """JSON Schema → a pydantic model (objects forbid extra fields). Top level must be an object."""
    defs = schema.get("$defs", {})  # pydantic's own schemas put nested models here, behind $ref
    if schema.get("type") != "object" or "properties" not in schema:
        wrapped = {"type": "object", "properties": {"value": schema}, "required": ["value"]}
        return _object_model(wrapped, name, defs)
    return _object_model(schema, name, defs)


def _object_model(schema: dict[str, Any], name: str, defs: dict[str, Any]) -> type[BaseModel]:
    required = set(schema.get("required", []))
    fields: dict[str, Any] = {}
    for key, sub in schema.get("properties", {}).items():
        annotation = _annotation(sub, f"{name}_{key}", defs)
        if key in required:
            fields[key] = (annotation, Field(...))
        else:
            fields[key] = (annotation | None, Field(None))
    config = ConfigDict(extra="allow" if schema.get("additionalProperties") is True else "forbid")
    model: type[BaseModel] = create_model(name, __config__=config, **fields)
    return model


def _annotation(schema: Any, name: str, defs: dict[str, Any]) -> Any:
    """The type, with the schema's bounds and labels attached (enforced when a reply or an edit is checked)."""
    base = _bare_annotation(schema, name, defs)
    if not isinstance(schema, dict):
        return base
    constraints = {_CONSTRAINTS[k]: schema[k] for k in _CONSTRAINTS if isinstance(schema.get(k), int | float)}
    labels = {k: schema[k] for k in _LABELS if isinstance(schema.get(k), str)}
    return Annotated[base, Field(**constraints, **labels)] if constraints or labels else base


_CONSTRAINTS = {"minimum": "ge", "maximum": "le", "minLength": "min_length", "maxLength": "max_length",
                "minItems": "min_length", "maxItems": "max_length"}


def _bare_annotation(schema: Any, name: str, defs: dict[str, Any]) -> Any:
    if not isinstance(schema, dict) or not schema:
        return Any
    if "$ref" in schema:
        target = schema["$ref"].split("/")[-1]
        return _annotation(defs.get(target, {}), target, defs)
    if "anyOf" in schema:
        options = [_annotation(option, name, defs) for option in schema["anyOf"]]
        return functools.reduce(operator.or_, [type(None) if option is None else option for option in options])
    if "enum" in schema:
        return Literal[tuple(schema["enum"])]
    kind = schema.get("type")
    if kind in _SCALARS:
        return _SCALARS[kind]
    if kind == "array":
        return list[_annotation(schema.get("items", {}), f"{name}_item", defs)]  # type: ignore[misc]
    if kind == "object":
        if schema.get("properties"):
            return _object_model(schema, name, defs)
        return dict[str, Any]
    if kind == "null":
        return None
    return Any


def unwrap(model: type[BaseModel], data: dict[str, Any]) -> Any:
    """Undo the `value` wrapper that non-object schemas get."""
    if set(model.model_fields) == {"value"} and set(data) == {"value"}:
        return data["value"]
    return data
