"""Bounds on what one template render may cost: integer size, string and list size, loop iterations,
render time. A template that would hang or allocate gigabytes fails with a clear error instead.

The checks run inside the sandboxed environment: binary operators are intercepted (which also stops Jinja's
optimizer from folding `9 ** (9 ** 10)` at compile time, the hang `playbook validate` used to have), every
`{% for %}` iterates through a counting filter, and widths given to str methods, filters and formats are capped.
"""

from __future__ import annotations

import contextvars
import math
import operator
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from runner.i18n import _

MAX_LENGTH = 5_000_000  # characters of one string, items of one list
MAX_INT_BITS = 1_000_000  # about 300,000 decimal digits
MAX_ITERATIONS = 2_000_000  # loop turns in one render
DEFAULT_SECONDS = 30.0  # render time when the step sets no timeout
_WIDTH = re.compile(r"\d{7,}")  # a width of a million or more in a format string


class TemplateLimit(Exception):
    """A template went past a bound; the message says which."""


@dataclass
class Budget:
    deadline: float
    iterations: int = 0

    def tick(self, turns: int = 1, *, costly: bool = False) -> None:
        """Count loop turns; look at the clock every 1024 of them, or now for a costly one (a big sequence built)."""
        self.iterations += turns
        if self.iterations > MAX_ITERATIONS:
            raise TemplateLimit(_("loops ran more than {limit:,} times in one template").format(
                                    limit=MAX_ITERATIONS))
        if (costly or self.iterations % 1024 == 0) and time.monotonic() > self.deadline:
            raise TemplateLimit(_("the template took too long to render (raise the step's timeout if it is real "
                                  "work)"))


_budget: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("template_budget", default=None)


def budget(seconds: float | None) -> contextvars.Token[Budget | None]:
    return _budget.set(Budget(time.monotonic() + (seconds or DEFAULT_SECONDS)))


def current() -> Budget | None:
    return _budget.get()


def release(token: contextvars.Token[Budget | None]) -> None:
    _budget.reset(token)


def _tick(turns: int = 1, *, costly: bool = False) -> None:
    current = _budget.get()
    if current is not None:
        current.tick(turns, costly=costly)


COSTLY = 10_000  # items or characters past which building a value is worth a look at the clock


def bounded(items: Iterable[Any]) -> Iterator[Any]:
    """Wraps the iterable of every `{% for %}`: counts turns against the render's budget."""
    for item in items:
        _tick()
        yield item


def concat(parts: list[Any]) -> str:
    """`a ~ b ~ …`, its length checked before it is built."""
    texts = [part if isinstance(part, str) else str(part) for part in parts]
    length = sum(map(len, texts))
    _tick(costly=length > COSTLY)
    check_length(length)
    return "".join(texts)


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | list | tuple | bytes) else 0


def check_length(length: int) -> None:
    """TemplateLimit when a string or list of `length` would pass the bound."""
    if length > MAX_LENGTH:
        raise TemplateLimit(_("a value of {length:,} characters or items is too large (the limit is {limit:,})").format(
                                length=length, limit=MAX_LENGTH))


def _int_bits(value: Any) -> int:
    return abs(value).bit_length() if isinstance(value, int) and not isinstance(value, bool) else 0


def binop(operator_name: str, left: Any, right: Any) -> Any:
    """`**`, `*`, `+` and `%` with their results bounded before they are computed."""
    _tick(costly=_size(left) + _size(right) > COSTLY)
    if operator_name == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 \
            and abs(left) > 1 and right * math.log2(abs(left)) > MAX_INT_BITS:
        raise TemplateLimit(_("{left} ** {right} is too large a number").format(left=left, right=right))
    if operator_name == "*":
        if _int_bits(left) + _int_bits(right) > MAX_INT_BITS:
            raise TemplateLimit(_("the product is too large a number"))
        for sequence, count in ((left, right), (right, left)):
            if _size(sequence) and isinstance(count, int) and not isinstance(count, bool):
                check_length(_size(sequence) * count)
    if operator_name == "+" and _size(left) and _size(right):
        check_length(_size(left) + _size(right))
    if operator_name == "%" and isinstance(left, str) and (_WIDTH.search(left) or "*" in left):
        raise TemplateLimit(_("a %-format with a huge or computed width is not allowed in templates"))
    return _OPERATORS[operator_name](left, right)


_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "**": operator.pow, "*": operator.mul, "+": operator.add, "%": operator.mod, "//": operator.floordiv,
    "/": operator.truediv, "-": operator.sub}
INTERCEPTED = frozenset({"**", "*", "+", "%"})

_WIDTH_METHODS = {"ljust", "rjust", "center", "zfill", "expandtabs"}


def check_call(target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Calls whose size comes from an argument: str.ljust(10**9), str.replace with a long replacement."""
    name = getattr(target, "__name__", "")
    owner = getattr(target, "__self__", None)
    if not isinstance(owner, str):
        return
    if name in _WIDTH_METHODS:
        for value in (*args, *kwargs.values()):
            if isinstance(value, int):
                check_length(value)
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        check_replace(owner, args[0], args[1])


def check_replace(text: str, old: str, new: str) -> None:
    count = len(text) + 1 if old == "" else text.count(old)
    check_length(len(text) + count * max(0, len(new) - len(old)))


_NESTED_FIELD = re.compile(r"\{[^{}]*:[^{}]*\{")  # '{:>{}}': a width computed from an argument


def check_format(template: str) -> None:
    if _WIDTH.search(template):
        raise TemplateLimit(_("a format with a width of a million or more is not allowed in templates"))
    if _NESTED_FIELD.search(template):
        raise TemplateLimit(_("a format whose width or precision comes from an argument ('{:>{}}') is not allowed "
                              "in templates; write the width as a number"))
