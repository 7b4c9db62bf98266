"""pydantic's validation errors in the user's words: no class names, `[type=…]` tags or documentation links.

Every place that shows a validation error to a user (playbooks, inputs, tool arguments, approval edits,
model replies, playbook.toml, eval suites and their datasets) goes through here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from runner.errors import framed
from runner.i18n import N_, _, ngettext

# A union's members show up in an error's location as their class or tag names; a user never wrote them.
_UNION_PART = re.compile(r"^(?:[A-Z]\w*|(?:literal|function-\w+|list|dict|str|int|float|bool|nullable|"
                         r"tagged-union|union|json-or-python|lax-or-strict|constrained-\w+)\[.*\]|"
                         r"str|int|float|bool|list|dict|none|null)$")
_CLASS_WORDS = re.compile(r"\s*(?:or )?instance of \w+")

# What a field that takes several forms looks like, for the forms' combined error.
FORMS = {
    "on_error": N_("on_error is one of: fail, skip, {default: <value>} or {goto: <step>}"),
    "switch": N_("switch is a mapping, not a list: switch: {cases: [{if: <condition>, goto: <step>}], "
                 "default: <step>}"),
    "output": N_("output is a compact schema ({field: type}, [type], {enum: [...]}) or a JSON Schema"),
    "max_failures": N_("max_failures is a count (3) or a percentage ('10%')"),
}


PATTERNS = {  # what a pattern allows, in words
    r"^[A-Za-z_][A-Za-z0-9_]*$": N_("letters, digits and _, not starting with a digit"),
    r"^[A-Za-z0-9_\-.一-鿿]+$": N_("letters, digits, Chinese characters, _, - and ., without spaces"),
}


def kind_of(value: Any) -> str:
    if value is None:
        return _("nothing (empty)")
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return _("the number {value}").format(value=value)
    if isinstance(value, str):
        return _("the text '{text}'").format(text=value[:40] + ("…" if len(value) > 40 else ""))
    if isinstance(value, list):
        return _("a list")
    if isinstance(value, dict):
        return _("a mapping")
    return _("a value of another kind")


def clean_location(loc: Iterable[Any]) -> tuple[Any, ...]:
    """The location as the user wrote it: union member names dropped."""
    return tuple(part for part in loc if not (isinstance(part, str) and _UNION_PART.match(part)))


def plain(error: Mapping[str, Any]) -> str:
    """One error's message in plain words (without its location)."""
    kind, ctx, value = error.get("type", ""), error.get("ctx") or {}, error.get("input")
    msg = str(error.get("msg", ""))
    if isinstance(value, str) and "${{" in value and kind.split("_")[0] in ("int", "float", "bool", "decimal"):
        return _("takes a fixed value written in the playbook, not an expression ({expression}); expressions work "
                 "in prompts and an llm step's parameters, `with:`, `map:`, `when:`, approval and switch fields and "
                 "outputs"
                 ).format(expression=value.strip())
    if kind in ("model_type", "dict_type", "model_attributes_type", "mapping_type"):
        return _("should be a mapping (name: value pairs), not {value}").format(value=kind_of(value))
    if kind in ("list_type", "tuple_type", "set_type", "iterable_type"):
        return _("should be a list, not {value}").format(value=kind_of(value))
    if kind in ("string_type", "string_sub_type"):
        return _("should be text, not {value}").format(value=kind_of(value))
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return _("should be a whole number, not {value}").format(value=kind_of(value))
    if kind in ("float_type", "float_parsing", "decimal_type", "decimal_parsing"):
        return _("should be a number, not {value}").format(value=kind_of(value))
    if kind in ("bool_type", "bool_parsing"):
        return _("should be true or false, not {value}").format(value=kind_of(value))
    bounds = {"greater_than_equal": (N_("should be at least {limit}, not {value}"), "ge"),
              "greater_than": (N_("should be more than {limit}, not {value}"), "gt"),
              "less_than_equal": (N_("should be at most {limit}, not {value}"), "le"),
              "less_than": (N_("should be less than {limit}, not {value}"), "lt")}
    if kind in bounds:
        sentence, key = bounds[kind]
        limit = ctx.get(key)
        shown = f"{limit:g}" if isinstance(limit, int | float) else str(limit)
        return _(sentence).format(limit=shown, value=repr(value))
    if kind in ("too_short", "too_long"):
        count = int(ctx.get("min_length" if kind == "too_short" else "max_length") or 0)
        if isinstance(value, str):
            sentence = ngettext("should have at least {count} character", "should have at least {count} characters",
                                count) if kind == "too_short" else \
                ngettext("should have at most {count} character", "should have at most {count} characters", count)
        else:
            sentence = ngettext("should have at least {count} item", "should have at least {count} items",
                                count) if kind == "too_short" else \
                ngettext("should have at most {count} item", "should have at most {count} items", count)
        return sentence.format(count=count)
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern"))
        allowed = _(PATTERNS[pattern]) if pattern in PATTERNS else _("the form {pattern}").format(pattern=pattern)
        return _("'{value}' is not allowed here: use {allowed}").format(value=value, allowed=allowed)
    if kind in ("literal_error", "enum"):
        expected = str(ctx.get("expected", "")).replace(" or ", ", ")  # pydantic's "'a', 'b' or 'c'"
        return _("should be one of {expected}, not {value}").format(expected=expected, value=kind_of(value))
    if kind == "missing":
        return _("is required")
    if kind == "extra_forbidden":
        return _("is not a known field")
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    msg = _CLASS_WORDS.sub("", msg.replace("Input should be", "should be"))
    return msg


def join_location(loc: Iterable[Any]) -> str:
    parts = [str(p) if isinstance(p, str) else f"[{p}]" for p in loc]
    return ".".join(parts).replace(".[", "[")


def summarise(errors: Sequence[Mapping[str, Any]], limit: int = 5) -> str:
    """'a.b: message; c: message' for the first `limit` errors, a union's alternatives merged."""
    return _("; ").join(framed(where, message) if where else message
                     for where, message in merged(errors)[:limit])


def merged(errors: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(location, message) pairs; a field's several union alternatives become one message saying its forms."""
    by_location: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for error in errors:
        by_location.setdefault(clean_location(error.get("loc", ())), []).append(error)
    out = []
    for loc, group in by_location.items():
        if len(group) > 1:
            field = next((p for p in reversed(loc) if isinstance(p, str)), "")
            value = group[0].get("input")
            message = _(FORMS[field]) if field in FORMS else _("; or ").join(dict.fromkeys(plain(e) for e in group))
            if field in FORMS:
                message = _("{value} does not fit: {forms}").format(value=kind_of(value), forms=message)
        else:
            message = plain(group[0])
        out.append((join_location(loc), message))
    return out
