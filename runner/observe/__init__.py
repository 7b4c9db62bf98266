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


class RunPlaybooks:
    """Which playbook each run of this process is (from its run_start), so every line and metric of a run can
    name it; a sub-playbook's run (`parent.child`) is named by its parent's until it says otherwise."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def started(self, event: dict[str, Any]) -> None:
        if event.get("run_id") and event.get("playbook"):
            self.names[str(event["run_id"])] = str(event["playbook"])

    def of(self, event: dict[str, Any]) -> str | None:
        run_id = str(event.get("run_id") or "")
        return self.names.get(run_id) or self.names.get(run_id.split(".")[0])

    def ended(self, event: dict[str, Any]) -> None:
        self.names.pop(str(event.get("run_id") or ""), None)


def reset() -> None:
    """Turn everything off again (tests, and an application embedding the runner that reconfigures)."""
    _hooks.clear()
    signals.reset()
