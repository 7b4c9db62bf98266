"""Ctrl-C and SIGTERM for a command that drives a run in this process.

The run is cancelled as soon as the event loop is free: in-flight requests are dropped, the executor
records the run as interrupted (failed, resumable; every finished call is already in the journal) and the
process exits 130 without waiting for worker threads — a local-model call cannot be stopped mid-answer.
If the loop stays busy in synchronous code (a first import) past a short grace, a timer records the run
as interrupted itself and leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from runner.cli.leaving import flush_output
from runner.config import Project
from runner.errors import interrupted
from runner.i18n import _

EXIT_INTERRUPTED = 130  # the shell's convention: 128 + SIGINT
GRACE = 1.0  # seconds the run gets to stop cleanly


def drive(work: Coroutine[Any, Any, Any], *, project: Project, run_id: str | None,
          say: Callable[[str], None], on_stop: Callable[[], None]) -> Any:
    """Run `work` to completion and return its result, or exit 130 on Ctrl-C / SIGTERM."""
    loop = asyncio.new_event_loop()
    main = loop.create_task(work)
    where = f"playbook resume {run_id}" if run_id else _("playbook runs list, then playbook resume <run id>")
    message = _("Interrupted; what finished is kept. To continue: {command}").format(command=where)
    hard_stop = threading.Timer(GRACE, _stop_hard, args=(project, run_id, lambda: _leave(say, message)))
    hard_stop.daemon = True

    def interrupted(*_: Any) -> None:
        # a plain signal handler runs even while the loop is busy in synchronous code
        loop.call_soon_threadsafe(main.cancel)
        if not hard_stop.is_alive():
            hard_stop.start()

    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, interrupted)
    try:
        result = loop.run_until_complete(main)
    except (asyncio.CancelledError, KeyboardInterrupt):
        on_stop()
        _leave(say, message)
    hard_stop.cancel()
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
    return result


def _leave(say: Callable[[str], None], message: str) -> None:
    say(message)
    flush_output()
    os._exit(EXIT_INTERRUPTED)


def _stop_hard(project: Project, run_id: str | None, leave: Callable[[], None]) -> None:
    if run_id:
        from runner.store import open_store

        store = open_store(project)
        run = store.get_run(run_id)
        if run is not None and run["status"] == "running":
            store.update_run(run["id"], status="failed", ended_at=time.time(), error=interrupted(run["id"]))
        store.close()
    leave()


@contextlib.contextmanager
def ctrl_c_after() -> Iterator[None]:
    """Ctrl-C held back until the block is done, then raised as KeyboardInterrupt: for work that must not stop half
    way (a run recorded as queued and its message sent to the workers — cut between the two, it would wait for a
    message that never went). What the block raises itself goes first."""
    pressed: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda number, _frame: pressed.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:
        raise KeyboardInterrupt
