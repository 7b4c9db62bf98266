"""Values that belong to one event loop — a pooled HTTP client, a Redis client, a semaphore — kept on the loop
itself and closed when `asyncio.run` shuts it down. They were kept in module dicts keyed by `id(loop)`: every
`asyncio.run` of a long-lived process (a worker runs one per task) added a client and kept its closed loop alive,
for ever; and a new loop could be handed a dead loop's values had it reused that id."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncGenerator, Callable
from typing import Any, TypeVar

T = TypeVar("T")
KEEPER = ("", "keeper")

# loops that take no attribute (uvloop's): their values by the loop, for as long as it lives
_elsewhere: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, Any], Any]] = \
    weakref.WeakKeyDictionary()


def loop_local(kind: str, key: Any, make: Callable[[], T]) -> T:
    """The running loop's value of `kind` for `key`, made by `make()` the first time."""
    loop = asyncio.get_running_loop()
    try:
        values: dict[tuple[str, Any], Any] = loop.__dict__.setdefault("_playbook_values", {})
    except AttributeError:
        values = _elsewhere.setdefault(loop, {})
    if not values:
        _close_at_shutdown(values)
    if (kind, key) not in values:
        values[(kind, key)] = make()
    return values[(kind, key)]  # type: ignore[no-any-return]


def _close_at_shutdown(values: dict[tuple[str, Any], Any]) -> None:
    """`asyncio.run` closes a loop's async generators while the loop still runs (`shutdown_asyncgens`): one started
    here closes the loop's clients then, so none is left to a closed loop ("Event loop is closed" at exit)."""
    async def keeper() -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            for key, value in list(values.items()):
                if key == KEEPER:
                    continue
                closing = getattr(value, "aclose", None) or getattr(value, "close", None)
                if closing is not None:  # a client (a lock, a semaphore, a limiter has nothing to close)
                    with contextlib.suppress(Exception):
                        result = closing()
                        if asyncio.iscoroutine(result):
                            await result
            values.clear()

    generator = keeper()
    values[KEEPER] = generator  # held by the loop's values: alive as long as they are
    with contextlib.suppress(StopIteration):
        generator.asend(None).send(None)  # started: the loop now tracks it and closes it at shutdown
