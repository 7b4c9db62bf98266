"""Things that happen outside a run's hooks, for whoever listens in this process (runner/observe: logs and
metrics): a model call tried again (`retry`: model, reason), a schedule's due time (`schedule_fired`: schedule,
action, lag). Nobody listening costs a loop over an empty list; a listener's failure never fails the work."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

_listeners: list[Callable[..., None]] = []


def listen(listener: Callable[..., None]) -> None:
    _listeners.append(listener)


def signal(name: str, **fields: Any) -> None:
    for listener in _listeners:
        with contextlib.suppress(Exception):  # what reports on the work must never fail the work
            listener(name, **fields)


def listening() -> list[Callable[..., None]]:
    return list(_listeners)


def reset() -> None:
    _listeners.clear()
