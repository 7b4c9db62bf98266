"""The one place a Runner is assembled, for every entry point — the CLI, the scheduler, the web service, a team
worker and its chunks, evals — so that a run behaves the same wherever it runs: the same project settings, and the
approval cards and run notices `playbook.toml` asks for, whichever process reaches the pause or the end.
(`tests/test_architecture.py` fails if a Runner is built anywhere else.)"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from runner import observe
from runner.config import Project
from runner.engine import liveness
from runner.engine.events import Hooks
from runner.engine.execute import Runner
from runner.engine.nodes.base import MapDistributor
from runner.observe import traces
from runner.registry import ToolFixtures


def assemble(project: Project, *, hooks: Sequence[Hooks] = (), notify: bool = True,
             distribute: MapDistributor | None = None, tool_fixtures: ToolFixtures | None = None,
             hand_on: Callable[[str], bool] | None = None) -> Runner:
    """A Runner for `project`: the caller's hooks (console progress, eval capture), plus the chat cards and
    notices when `[server]` names a channel and `notify` (evals replay runs: they notify no one)."""
    liveness.configure(project.settings.queue.heartbeat)  # whoever drives or claims runs judges owners alike
    cards = chat_cards(project) if notify else None
    # the process's logs and metrics (serve, scheduler, worker, run --log-json), when it turned them on, and the
    # project's traces, when playbook.toml gives [trace] otlp_endpoint
    hooks = [*hooks, *observe.process_hooks(), *traces.hooks_for(project), *([cards] if cards is not None else [])]
    return Runner(project, hooks=hooks, distribute=distribute,
                  tool_fixtures=tool_fixtures, hand_on=hand_on)


def chat_cards(project: Project) -> Hooks | None:
    """The hook that sends approval cards and run notices, when playbook.toml names a channel."""
    if not (project.settings.server.approval_channel or project.settings.server.notify_channel):
        return None
    from runner.cards import ApprovalCards

    return ApprovalCards(project)


async def settled(runner: Runner, work: Any) -> Any:
    """Await `work` (a run's begin, resume or approve), then the cards and notices it set off: a process that
    exits — a CLI command, a worker task whose event loop closes — must not drop them half-sent."""
    try:
        return await work
    finally:
        await runner.flush_hooks()
