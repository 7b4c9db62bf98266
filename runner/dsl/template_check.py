"""What validate reads from a `${{ }}` template without running it: the names it reads (and whether each read
sits under a guard), sandbox violations, filters and tests that do not exist, syntax errors in plain words."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass

import jinja2
from jinja2 import nodes
from jinja2.parser import Parser

from runner.dsl.templates import TOO_DEEP, TemplateError, environment, lone_expression
from runner.errors import did_you_mean
from runner.i18n import _

_FOLLOWS = re.compile(r"expected token 'end of print statement', got '(.+)'")
_CHAR = re.compile(r"unexpected char '(.+?)'")
_DEFAULTS = ("default", "d")


@dataclass(frozen=True)
class Reference:
    """A dotted name used by a template, e.g. ('steps', 'label', 'items'). `guarded`: read under a condition, an
    `or`/`and`, an `is` test or `| default`, so a missing value is the template's own business."""

    chain: tuple[str, ...]
    guarded: bool = False


def parse(text: str) -> nodes.Template:
    """Parse a template; raises TemplateError saying in plain words what is wrong and where."""
    env = environment()
    try:
        expr = lone_expression(text)
        if expr is not None:
            # parse as an expression so that `${{ a b }}` is reported like at run time (only parsed:
            # `compile_expression` would also generate and compile Python code, half of validate's time)
            parser = Parser(env, expr, state="variable")
            parser.parse_expression()
            if not parser.stream.eos:
                got = parser.stream.current
                raise jinja2.TemplateSyntaxError(f"expected token 'end of print statement', got '{got.value}'",
                                                 got.lineno, None, None)
        tree = env.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        where = _(" (template line {lineno})").format(lineno=exc.lineno) if exc.lineno and exc.lineno > 1 else ""
        raise TemplateError(f"{plain_syntax(exc.message or '')}{where}") from None
    except RecursionError:  # Jinja's parser recurses once per level of nesting
        raise TemplateError(_(TOO_DEEP)) from None
    if _depth(tree) > MAX_DEPTH:  # parsed, but compiling it at run time would recurse past Python's limit
        raise TemplateError(_(TOO_DEEP))
    return tree


MAX_DEPTH = 60  # levels of a template's syntax tree: Jinja's compiler recurses once per level, a few frames each


def _depth(tree: nodes.Node) -> int:
    """How deep the syntax tree goes, counted without recursion."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())
    return deepest


def plain_syntax(message: str) -> str:
    """Jinja's parser wording → what is wrong inside `${{ }}`."""
    if match := _FOLLOWS.search(message):
        return (_("inside ${{{{ }}}}, '{value}' cannot follow what comes before it: join two values with an "
                  "operator (+, ~, and, or, ==) or a filter (| name), and keep plain text outside ${{{{ }}}}").format(
                    value=match.group(1)))
    if match := _CHAR.search(message):
        return (_("inside ${{{{ }}}}, the character '{value}' is not part of an expression (full-width "
                  "punctuation? write it outside ${{{{ }}}}, or inside quotes)").format(value=match.group(1)))
    if "expected 'name'" in message:
        return _("inside ${{ }}, a name is missing: after `|` comes a filter's name, after `.` a field's name")
    if "unexpected end of template" in message:
        return _("a `${{` or `{%` is not closed (each `${{` needs its `}}`, each `{% if %}`/`{% for %}` its "
                 "`{% end… %}`)")
    if message.startswith("unexpected '}'") or message.startswith("unexpected ')'"):
        return _("{name}: a bracket is closed that was not opened, or one too many").format(
                   name=message.split(chr(10))[0])
    return _("template syntax error: {message}").format(message=message)


def inspect(text: str) -> tuple[list[Reference], list[str]]:
    """The names a template reads (outside its own loop/set variables) and sandbox violations."""
    tree = parse(text)
    return references(tree), unsafe_names(tree)


def references(tree: nodes.Template) -> list[Reference]:
    local_names = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    guarded = _guarded(tree)
    return [Reference(chain, id(node) in guarded) for node, chain in _chains(tree) if chain[0] not in local_names]


def unsafe_names(tree: nodes.Template) -> list[str]:
    unsafe = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
        attr = _attribute_name(node)
        if attr is not None and attr.startswith("_"):
            unsafe.append(attr)
    return unsafe


def unknown_filters_and_tests(tree: nodes.Template) -> list[str]:
    """`| split_lines` or `is oddd`: a name Jinja would only reject when the step runs."""
    env = environment()
    problems = []
    methods = [m for m in dir(str) if not m.startswith("_")]
    for node in tree.find_all(nodes.Filter):
        if node.name not in env.filters:
            method = difflib.get_close_matches(node.name, methods, n=1, cutoff=0.8)
            hint = _(" (for text, call its method instead: `value.{name}()`)").format(name=method[0]) if method else \
                did_you_mean(node.name, _public(env.filters))
            problems.append(_("unknown filter '{name}'{hint}").format(name=node.name, hint=hint))
    for test in tree.find_all(nodes.Test):
        if test.name not in env.tests:
            problems.append(_("unknown test '{name}'{hint}").format(
                                name=test.name, hint=did_you_mean(test.name, env.tests)))
    return list(dict.fromkeys(problems))


def loop_outside_for(tree: nodes.Template) -> list[str]:
    """`loop.index` read where no `{% for %}` body is around it (in the loop's own `in …`, or outside any loop):
    Jinja only says `'loop' is undefined` when the step runs."""
    inside: set[int] = set()
    for loop in tree.find_all(nodes.For):
        for part in (*loop.body, *loop.else_):
            inside.add(id(part))
            inside.update(id(n) for n in part.find_all(nodes.Node))
    if any(n.name == "loop" and n.ctx == "load" and id(n) not in inside for n in tree.find_all(nodes.Name)):
        return [_("`loop` (loop.index, loop.first …) exists only inside a `{% for %}` body")]
    return []


def _public(names: dict[str, object]) -> list[str]:
    return [n for n in names if not n.startswith("playbook_")]


def _guarded(tree: nodes.Template) -> set[int]:
    """Nodes inside a guard: a conditional (`x if c else y`, `{% if %}`), an `or`/`and`, an `is` test, `| default`."""
    inside: set[int] = set()
    for node in tree.find_all((nodes.CondExpr, nodes.Or, nodes.And, nodes.If, nodes.Test, nodes.Filter)):
        if isinstance(node, nodes.Filter) and node.name not in _DEFAULTS:
            continue
        root = node.node if isinstance(node, nodes.Test) else node  # `| default(x)`: its fallback x as well
        if root is None:
            continue
        inside.add(id(root))
        inside.update(id(n) for n in root.find_all(nodes.Node))
    return inside


def _attribute_name(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Getattr):
        return str(node.attr)
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) \
            and isinstance(node.arg.value, str):
        return node.arg.value
    return None


def _chains(tree: nodes.Node) -> Iterator[tuple[nodes.Node, tuple[str, ...]]]:
    """Constant access chains rooted at a loaded name, with their outermost node: `steps.label.items` → 3 parts.

    A dynamic index (`rows[i]`) ends the part that can be checked statically.
    """
    accesses = tree.find_all((nodes.Getattr, nodes.Getitem))
    inner = {id(n.node) for n in accesses}  # type: ignore[attr-defined]
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
        if id(node) in inner:
            continue
        parts: list[str] = []
        current: nodes.Node = node
        while isinstance(current, nodes.Getattr | nodes.Getitem):
            name = _attribute_name(current)
            parts = [] if name is None else [*parts, name]
            current = current.node
        if isinstance(current, nodes.Name) and current.ctx == "load":
            yield node, (current.name, *reversed(parts))
