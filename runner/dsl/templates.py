"""`${{ expr }}` templates in a sandboxed Jinja2 environment with strict undefined.

Pure: parse, inspect references, render. A value that is exactly one `${{ expr }}` evaluates to
the native value (a list stays a list); any other text renders to a string.
"""

from __future__ import annotations

import builtins
import functools
import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from runner.dsl import sandbox, template_helpers
from runner.errors import did_you_mean
from runner.i18n import N_, _
from runner.messages import kind_of
from runner.wording import number, status

_LONE = re.compile(r"^\s*\$\{\{((?:(?!\}\}).)*)\}\}\s*$", re.DOTALL)


class TemplateError(Exception):
    """A template failed to parse or render; the message is meant for the user. `path`: where inside the value
    rendered (a key of `with:`, an index of a list), outermost first."""

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def within(self, key: str | int) -> TemplateError:
        return TemplateError(self.message, (key, *self.path))

    def where(self, field: str) -> str:
        """`field` with the path inside it, e.g. `with.content` or `outputs.rows[2]`."""
        text = field
        for key in self.path:
            text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
        return text


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = sandbox.INTERCEPTED  # bounded at run time, and never folded at compile time

    def getattr(self, obj: Any, attribute: str) -> Any:
        # `steps.label.items` must mean the key, not dict.items
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        return sandbox.binop(operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        sandbox.check_call(__obj, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None

        def checked(*args: Any, **kwargs: Any) -> Any:
            sandbox.check_format(value.__self__)
            return wrapped(*args, **kwargs)

        return checked

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):  # every loop counts its turns against the render's budget
            loop.iter = nodes.Filter(loop.iter, "playbook_bounded", [], [], None, None, lineno=loop.lineno)
        bounded: nodes.Template = _BoundedConcat().visit(tree)
        return bounded


class _BoundedConcat(NodeTransformer):
    """`a ~ b` joins through a filter that checks the length first: `{% set s.v = s.v ~ s.v %}` in a loop doubled
    a string past the machine's memory before any other bound saw it."""

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Filter(nodes.List(node.nodes, lineno=node.lineno), "playbook_concat", [], [], None, None,
                            lineno=node.lineno)


def _to_json(value: Any, indent: int | None = None) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, indent=indent, default=_json_default)


def _json_default(value: Any) -> Any:
    """A mapping that is not a dict (`steps` itself) as its items; anything else as its text."""
    return dict(value) if isinstance(value, Mapping) else str(value)


def _cross(left: Any, right: Any, left_name: str = "a", right_name: str = "b") -> list[dict[str, Any]]:
    """Every pairing of two lists as dicts, e.g. personas × concepts for a map over both."""
    return [{left_name: a, right_name: b} for a in left for b in right]


def _number(value: Any, decimals: int = 2, suffix: str = "") -> str:
    """The `number` filter: `wording.number`, except that a boolean stays as written in a template."""
    return str(value) if isinstance(value, bool) else number(value, decimals, suffix)


def _rank_by(rows: Any, fields: list[str]) -> list[dict[str, Any]]:
    """Rows sorted by the sum of their numeric `fields`, best first, each with that sum as `score`."""
    scored = [{**row, "score": sum(float(row.get(f) or 0) for f in fields)} for row in rows]
    return sorted(scored, key=lambda row: -row["score"])


class _Undefined(jinja2.StrictUndefined):
    """Strict undefined whose message names what is missing in plain words, with the fields there are."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        name, obj = self._undefined_name, self._undefined_obj
        if self._undefined_hint or obj is jinja2.utils.missing:
            return str(super()._undefined_message)
        if obj is None:
            return _("no field '{name}': the value is null (a step that was skipped, or an empty output?)").format(
                       name=name)
        if isinstance(obj, Mapping):
            fields = [str(k) for k in obj]
            return _("no field '{name}'{value}").format(
                       name=name, value=did_you_mean(str(name), fields) if fields else _(" (it has no fields)"))
        return _("no field '{name}' on {value}").format(name=name, value=kind_of(obj))


def _finalize(value: Any) -> Any:
    """Every `${{ }}` value, before it is printed into text: an undefined value inside a list or dict fails
    here instead of printing as `Undefined`."""
    return complete(value)


def complete(value: Any) -> Any:
    """A rendered value made whole: iterators (`map`, `select` without `| list`) become lists, and an undefined
    value anywhere inside raises the undefined error, instead of reaching a tool, a prompt or the run's state."""
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list):
        for entry in value:
            if not isinstance(entry, str | int | float | bool) and entry is not None:
                complete(entry)
        return value
    if isinstance(value, Mapping):
        for entry in value.values():
            complete(entry)
        return value
    if isinstance(value, tuple | Iterator):
        return [complete(entry) for entry in sandbox.bounded(value)]
    return value


@lru_cache(maxsize=1)
def environment() -> _Environment:
    env = _Environment(variable_start_string="${{", variable_end_string="}}", finalize=_finalize,
                       undefined=_Undefined, autoescape=False, keep_trailing_newline=True)
    env.filters["tojson"] = _to_json
    env.filters["json"] = _to_json
    env.filters["to_json"] = _to_json
    env.filters.update(template_helpers.FILTERS)
    env.filters["cross"] = _cross
    env.filters["number"] = _number
    env.filters["label"] = status  # `approve` → 通过, `done` → 已完成: status and decision words in Chinese
    env.filters["rank_by"] = _rank_by
    env.filters["playbook_bounded"] = sandbox.bounded
    env.filters["playbook_concat"] = sandbox.concat
    env.filters["sum"] = _sum
    for width_filter in ("center", "indent", "wordwrap", "truncate"):
        env.filters[width_filter] = _width_checked(env.filters[width_filter])
    env.filters["format"] = _format
    env.filters["replace"] = _replace
    env.globals["lipsum"] = _lipsum
    return env


def _width_checked(original: Any) -> Any:
    """`original` with its width arguments bounded. wordwrap and truncate take the environment first (Jinja's
    pass_environment mark, kept by `wraps`): the value and the widths come after it."""
    skip = 2 if getattr(original, "jinja_pass_arg", None) is not None else 1

    @functools.wraps(original)
    def checked(*args: Any, **kwargs: Any) -> Any:
        for argument in (*args[skip:], *kwargs.values()):
            if isinstance(argument, int | float) and not isinstance(argument, bool) and argument > sandbox.MAX_LENGTH:
                raise sandbox.TemplateLimit(_("a width of {argument:,} is too large").format(argument=argument))
        return original(*args, **kwargs)

    return checked


@jinja2.pass_environment
def _sum(environment: Any, iterable: Any, attribute: str | int | None = None, start: Any = 0) -> Any:
    """Jinja's `sum`, one bounded `+` at a time: `lists | sum(start=[])` grows a list per item."""
    from jinja2.filters import make_attrgetter

    values = map(make_attrgetter(environment, attribute), iterable) if attribute is not None else iterable
    total = start
    for value in values:
        total = sandbox.binop("+", total, value)
    return total


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    text = str(value)
    sandbox.check_format(text)
    if "*" in text:
        raise sandbox.TemplateLimit(_("a %-format with a computed width is not allowed in templates"))
    return text % (kwargs or args)


def _replace(value: Any, old: str, new: str, count: int | None = None) -> str:
    text = str(value)
    sandbox.check_replace(text, str(old), str(new))
    return text.replace(str(old), str(new), -1 if count is None else count)


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    """Jinja's lipsum with its sizes capped (n=10**9 would build gigabytes)."""
    from jinja2.utils import generate_lorem_ipsum

    cap = builtins.min
    return str(generate_lorem_ipsum(n=cap(n, 20), html=html, min=cap(min, 200), max=cap(max, 200)))


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("${{" in value or "{%" in value)


def lone_expression(text: str) -> str | None:
    match = _LONE.match(text)
    return match.group(1).strip() if match else None


@lru_cache(maxsize=4096)
def _compiled_text(text: str) -> jinja2.Template:
    return environment().from_string(text)


@lru_cache(maxsize=4096)
def _compiled_expression(expr: str) -> Any:
    return environment().compile_expression(expr, undefined_to_none=False)


def render(value: Any, context: Mapping[str, Any], *, seconds: float | None = None) -> Any:
    """Render every template inside `value` (strings, lists and dicts, recursively), within the sandbox's
    bounds and `seconds` of time (the step's timeout)."""
    token = sandbox.budget(seconds) if sandbox.current() is None else None
    try:
        return _render(value, context)
    finally:
        if token is not None:
            sandbox.release(token)


TOO_DEEP = N_("the template nests too deeply, or calls itself too deeply (brackets, parentheses or operators "
              "inside one another, a macro calling itself: dozens of levels); compute it in parts, a step or a "
              "variable each")


def _render(value: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        if not is_template(value):
            return value
        try:
            expr = lone_expression(value)
            if expr is not None:
                return complete(_compiled_expression(expr)(**context))
            return _compiled_text(value).render(**context)
        except (jinja2.UndefinedError, SecurityError, jinja2.TemplateError, TypeError, sandbox.TemplateLimit,
                ValueError, ZeroDivisionError, KeyError, IndexError, OverflowError, RecursionError) as exc:
            reason = _(TOO_DEEP) if isinstance(exc, RecursionError) else exc
            raise TemplateError(_("cannot evaluate {value}: {reason}").format(value=_short(value),
                                                                              reason=reason)) from None
    if isinstance(value, list):
        rendered = []
        for i, v in enumerate(value):
            try:
                rendered.append(_render(v, context))
            except TemplateError as exc:
                raise exc.within(i) from None
        return rendered
    if isinstance(value, dict):
        done = {}
        for k, v in value.items():
            try:
                done[k] = _render(v, context)
            except TemplateError as exc:
                raise exc.within(str(k)) from None
        return done
    return value


def _short(text: str) -> str:
    one_line = " ".join(text.split())
    return repr(one_line if len(one_line) <= 80 else one_line[:77] + "...")
