"""What a `playbook worker` does with a message: claim the run (or chunk) in the store, then drive it.

A message may arrive twice (redelivered after a worker died, or while its first worker still works): the
claim decides. A queued run is claimed by a compare-and-set; a `running` one only when its holder is dead;
anything else (done, waiting, cancelled, held by a live worker) is left alone and the message acknowledged.
While a worker drives a run it writes a heartbeat on it, which is how workers on other machines tell a live
holder from a lost one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

from runner.assembly import assemble, settled
from runner.config import load_project
from runner.engine.execute import DATABASE_LOST, Runner
from runner.engine.liveness import HEARTBEAT, run_alive, this_process
from runner.store import Store
from runner.team import chunks, queue

log = logging.getLogger("playbook.worker")
AFTER_OUTAGE = 3  # times a run that failed on a database outage is handed on again by itself, then a resume is asked


def register_tasks(app: Any) -> None:
    """The tasks a worker runs; thin: the store, not the message, holds what to do."""

    @app.task(name="playbook.work", bind=True)  # type: ignore[untyped-decorator]
    def work(task: Any, kind: str, run_id: str, decision: dict[str, Any] | None = None) -> None:
        do_work(kind, run_id, decision, worker=task.request.hostname)

    @app.task(name="playbook.chunk", bind=True)  # type: ignore[untyped-decorator]
    def chunk(task: Any, run_id: str, step: str, visit: int, number: int) -> None:
        do_chunk(run_id, step, visit, number, worker=task.request.hostname)


def team_runner() -> Runner:
    """A Runner whose large maps are shared with the other workers."""
    project = load_project()

    def offer(run_id: str, step: str, visit: int, number: int) -> None:
        queue.send_chunk(project, run_id, step, visit, number)

    return assemble(project, distribute=chunks.distributor(offer, project.settings.queue.map_chunk))


def claim(store: Store, run: dict[str, Any]) -> bool:
    if run["status"] == "queued" or (run["status"] == "running" and not run_alive(run)):
        return store.take_over(run, **this_process())
    return False


def do_work(kind: str, run_id: str, decision: dict[str, Any] | None, *, worker: str = "") -> None:
    chunks.WORKER["name"] = worker
    runner = team_runner()
    try:
        run = runner.store.get_run(run_id)
        if run is None or not claim(runner.store, run):
            log.info("run %s: nothing to do here (%s)", run_id, run["status"] if run else "unknown run")
            return
        log.info("run %s: %s", run_id, kind)
        with _heartbeat(runner.store, run_id):
            if kind == "start" and run["status"] == "queued":
                outcome = asyncio.run(settled(runner, runner.begin(run_id)))
            else:  # a resume, a decision, or a start whose first worker died: the journal skips what finished
                outcome = asyncio.run(settled(runner, runner.resume(run_id, decision=decision, claimed=True)))
        log.info("run %s: %s", run_id, outcome.status)
        if outcome.status == "failed" and (outcome.error or "").startswith(DATABASE_LOST) \
                and any(runner.store.claim_once(run_id, f"continue-after-outage:{n}") for n in range(AFTER_OUTAGE)):
            log.info("run %s: the database is back; handing the run to the workers again", run_id)
            queue.enqueue_continue(runner.project, runner.store, run_id)
    finally:
        runner.close()


def do_chunk(run_id: str, step: str, visit: int, number: int, *, worker: str = "") -> None:
    chunks.WORKER["name"] = worker
    runner = team_runner()
    try:
        run = runner.store.get_run(run_id)
        if run is None or run["status"] != "running":
            return  # the run ended, failed or was cancelled: its coordinator no longer waits for this chunk
        rc = runner.context(run)
        try:
            ran = asyncio.run(chunks.run_offered_chunk(rc, step, visit, number))
        except Exception as exc:  # recorded on the chunk; its run's coordinator takes it from here
            log.warning("run %s: chunk %s of %s failed: %s", run_id, number, step, exc)
            return
        finally:
            rc.hooks.close()
        log.info("run %s: chunk %s of %s %s", run_id, number, step, "done" if ran else "not needed here")
    finally:
        runner.close()


@contextlib.contextmanager
def _heartbeat(store: Store, run_id: str) -> Iterator[None]:
    """Beat on the run from a thread, so a long synchronous stretch of the run (a big sheet) never looks dead."""
    me = this_process()
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT):
            with contextlib.suppress(Exception):  # a missed beat is not an error; a lost store shows elsewhere
                if not store.heartbeat(run_id, me["pid"], me["host"]):
                    return  # no longer ours
    thread = threading.Thread(target=beat, name=f"heartbeat-{run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
