"""`output:` schemas — compact or full JSON Schema — to JSON Schema and to pydantic models.

Compact form: `string | integer | number | boolean | object | any` (a trailing `?` makes a field
optional), `{enum: [...]}`, `[type]` for lists, and nested maps `{field: type}`.
"""

from __future__ import annotations

import functools
import operator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

_SCALARS: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool}
_COMPACT_NAMES = {*_SCALARS, "object", "any"}
_JSON_TYPES = {*_SCALARS, "object", "array", "null"}
_JSON_KEYWORDS = {"type", "properties", "required", "items", "enum", "description", "title",
                  "additionalProperties", "minItems", "maxItems", "minimum", "maximum", "minLength",
                  "maxLength", "pattern", "$schema", "format", "default", "const", "anyOf"}


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
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise SchemaError(f"{where}: unknown type '{spec}'{hint}; use one of "
                              f"{', '.join(sorted(_COMPACT_NAMES))}")
        schema: dict[str, Any] = {} if name == "any" else {"type": name}
        return {**schema, "x-optional": True} if optional else schema
    if isinstance(spec, list):
        if len(spec) != 1:
            raise SchemaError(f"{where}: a list type is written [type] with exactly one element")
        return {"type": "array", "items": to_json_schema(spec[0], f"{where}[]")}
    if isinstance(spec, dict):
        if set(spec) == {"enum"}:
            if not isinstance(spec["enum"], list) or not spec["enum"]:
                raise SchemaError(f"{where}: enum needs a non-empty list of values")
            return {"enum": list(spec["enum"])}
        if not spec:
            raise SchemaError(f"{where}: an object schema needs at least one field")
        props: dict[str, Any] = {}
        required: list[str] = []
        for key, sub in spec.items():
            child = to_json_schema(sub, f"{where}.{key}")
            if not child.pop("x-optional", False):
                required.append(str(key))
            props[str(key)] = child
        return {"type": "object", "properties": props, "required": required,
                "additionalProperties": False}
    raise SchemaError(f"{where}: expected a type name, [type], {{enum: [...]}} or a mapping of fields")


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
        description = sub.get("description") if isinstance(sub, dict) else None
        if key in required:
            fields[key] = (annotation, Field(..., description=description))
        else:
            fields[key] = (annotation | None, Field(None, description=description))
    config = ConfigDict(extra="allow" if schema.get("additionalProperties") is True else "forbid")
    model: type[BaseModel] = create_model(name, __config__=config, **fields)
    return model


def _annotation(schema: Any, name: str, defs: dict[str, Any]) -> Any:
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
