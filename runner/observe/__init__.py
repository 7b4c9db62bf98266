"""What a process tells the people who keep a team server up: structured logs (`logs.py`) and Prometheus metrics
(`metrics.py`). Both are off until a command turns them on for its process (`serve`, `scheduler`, `worker`,
`run --log-json`); then `runner.assembly.assemble` adds their hooks to every run the process drives, so a run
reports the same way from the CLI, the scheduler, the web page and a worker, and they listen to the signals sent
from outside a run (runner/signals.py: a model's retries, a schedule's lag).

Off costs nothing: no hook is added and no one listens."""

from __future__ import annotations

from typing import Any

from runner import signals

_hooks: list[Any] = []  # runner.engine.events.Hooks (not imported: the engine's modules send signals)


def process_hooks() -> list[Any]:
    """The hooks this process adds to every run it assembles (none unless logs or metrics are on)."""
    return list(_hooks)


def add_hook(hook: Any) -> None:
    _hooks.append(hook)


def reset() -> None:
    """Turn everything off again (tests, and an application embedding the runner that reconfigures)."""
    _hooks.clear()
    signals.reset()
