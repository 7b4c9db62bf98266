"""What a `playbook worker` does with a message: claim the run (or chunk) in the store, then drive it.

A message may arrive twice (redelivered after a worker died, or while its first worker still works): the
claim decides. A queued run is claimed by a compare-and-set; a `running` one only when its holder is dead (or
wedged: runner/engine/heartbeat.py) or is this very process, which is not driving it while it runs this task;
anything else (done, waiting, cancelled, held by a live worker) is left alone and the message acknowledged.

A database outage longer than the store waits (RECONNECT_SECONDS) is not the message's end: the task is sent
again later (`OUTAGE_RETRIES`), so neither a run nor a map chunk taken during the outage is lost with it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from runner.assembly import assemble, settled
from runner.config import load_project
from runner.engine.execute import Runner
from runner.engine.liveness import HOST, run_alive, this_process
from runner.store import Store, store_lost
from runner.team import chunks, queue

log = logging.getLogger("playbook.worker")
AFTER_OUTAGE = 3  # times a run that failed on a database outage is handed on again by itself, then a resume is asked
OUTAGE_RETRIES = 20  # times a task that could not reach the store is sent again, a minute or less apart (~20 min)


def register_tasks(app: Any) -> None:
    """The tasks a worker runs; thin: the store, not the message, holds what to do."""

    @app.task(name="playbook.work", bind=True, max_retries=OUTAGE_RETRIES)  # type: ignore[untyped-decorator]
    def work(task: Any, kind: str, run_id: str, decision: dict[str, Any] | None = None) -> None:
        try:
            do_work(kind, run_id, decision, worker=task.request.hostname)
        except Exception as exc:
            _again_after_outage(task, exc, run_id)

    @app.task(name="playbook.chunk", bind=True, max_retries=OUTAGE_RETRIES)  # type: ignore[untyped-decorator]
    def chunk(task: Any, run_id: str, step: str, visit: int, number: int) -> None:
        try:
            do_chunk(run_id, step, visit, number, worker=task.request.hostname)
        except Exception as exc:
            _again_after_outage(task, exc, run_id)


def _again_after_outage(task: Any, exc: Exception, run_id: str) -> None:
    """Send the task again later when the store was away; any other error is the task's own."""
    if not store_lost(exc):
        raise exc
    log.warning("run %s: the store is not answering (%s); trying this task again later", run_id, exc)
    raise task.retry(exc=exc, countdown=min(60, 5 * 2 ** task.request.retries))


def team_runner() -> Runner:
    """A Runner whose large maps are shared with the other workers."""
    project = load_project()

    def offer(run_id: str, step: str, visit: int, number: int) -> None:
        queue.send_chunk(project, run_id, step, visit, number)

    def hand_on(run_id: str) -> bool:
        """A run that failed on a database outage, now back: to the workers again, a bounded number of times."""
        store = runner.store
        if not any(store.claim_once(run_id, f"continue-after-outage:{n}") for n in range(AFTER_OUTAGE)):
            return False
        log.info("run %s: the database is back; handing the run to the workers again", run_id)
        queue.enqueue_continue(project, store, run_id)
        return True

    runner = assemble(project, distribute=chunks.distributor(offer, project.settings.queue.map_chunk),
                      hand_on=hand_on)
    return runner


def claim(store: Store, run: dict[str, Any]) -> bool:
    # a drive of ours that ended without releasing the run (its store went away): a prefork pool process runs one
    # task at a time, so while it runs this one it drives nothing else
    held_here = run.get("pid") == os.getpid() and run.get("host") in (None, HOST)
    if run["status"] == "queued" or (run["status"] == "running" and (held_here or not run_alive(run))):
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
        if kind == "start" and run["status"] == "queued":
            outcome = asyncio.run(settled(runner, runner.begin(run_id)))
        else:  # a resume, a decision, or a start whose first worker died: the journal skips what finished
            outcome = asyncio.run(settled(runner, runner.resume(run_id, decision=decision, claimed=True)))
        log.info("run %s: %s", run_id, outcome.status)
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
