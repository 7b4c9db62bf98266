"""Distributed maps: a map over more than `[queue] map_chunk` items is split into chunks any worker may run.

The run's own worker is the coordinator. It saves the state the map's templates read (so a chunk renders
the same items and prompts), records the chunks in the store and sends one message per chunk; then, until
every chunk is done, it runs chunks itself — one nobody has taken, or one whose holder died — and reports
progress. A chunk journals each unit (batch) as the map always does, so a chunk run again after its holder
died skips every unit already journaled. Afterwards the map node runs as usual and finds every unit in the
journal: outputs re-align 1:1 with the input and nothing is asked twice.

A chunk's holder is one process (host, pid, start time) that writes a heartbeat while it works; a holder
on this machine is alive while its process is, one elsewhere while its heartbeat is fresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from runner.engine import liveness
from runner.engine.liveness import HOST, holder_alive, this_process
from runner.engine.nodes import RunContext, StepContext
from runner.engine.nodes.map import map_items, run_units, unit_size
from runner.errors import PlaybookError
from runner.i18n import _

SNAPSHOT = "__map_state__"  # journal step under which a distributed map's template state is kept
POLL = 0.2  # seconds between the coordinator's looks at its chunks
WORKER = {"name": ""}  # the Celery worker this process belongs to (its events name it)


def holder_id() -> str:
    me = this_process()
    return f"{me['host']}|{me['pid']}|{me['pid_started']}"


def held_elsewhere(worker: str | None, heartbeat: float | None) -> bool:
    """Whether the holder recorded on a chunk is another process that is still alive."""
    if not worker or worker == holder_id():
        return False
    host, pid, started = [*worker.split("|"), "", "", ""][:3]
    return holder_alive(int(pid) if pid.isdigit() else None, float(started) if started not in ("", "None") else None,
                        host or None, heartbeat)


def chunk_ranges(total: int, chunk_items: int, unit: int, concurrency: int = 1) -> list[tuple[int, int]]:
    """[first, end) item ranges of about `chunk_items`, in whole waves (unit × concurrency items) where a wave
    fits: a chunk whose last wave is a few units wide would leave its worker's other slots idle."""
    wave = unit * concurrency if unit * concurrency <= chunk_items else unit
    step = max(unit, chunk_items // wave * wave)
    return [(first, min(first + step, total)) for first in range(0, total, step)]


def distributor(send_chunk: Callable[[str, str, int, int], None], chunk_items: int) -> Any:
    """The RunContext.distribute of a team worker's runs; `send_chunk(run_id, step, visit, number)` offers a
    chunk to the workers."""

    async def distribute(ctx: StepContext, items: list[Any]) -> None:
        if len(items) <= chunk_items:
            return
        run_id, step, visit = ctx.run.run_id, ctx.step.id, ctx.visit
        store = ctx.run.store
        ctx.run.journal_fresh[(step, visit)] = None  # other workers journal this step's units: always look up
        store.journal_put(run_id, SNAPSHOT, visit, step, {k: ctx.state.get(k) for k in
                                                          ("inputs", "steps", "approval", "run")})
        concurrency = ctx.step.concurrency or ctx.run.playbook.spec.limits.concurrency
        store.chunks_create(run_id, step, visit, chunk_ranges(len(items), chunk_items, unit_size(ctx), concurrency))
        try:
            for chunk in store.chunk_rows(run_id, step, visit):
                if chunk["status"] != "done":
                    send_chunk(run_id, step, visit, chunk["chunk"])
        except PlaybookError as exc:  # the broker is down: this worker runs every chunk itself
            ctx.run.hooks.on_map_progress(run_id=run_id, step=step, done=0, total=len(items), batch_done=False,
                                          rate=None, notice=_("{exc} — running every chunk here").format(exc=exc))
        reported = -1
        while True:
            ctx.run.check_cancel(step)
            chunks = store.chunk_rows(run_id, step, visit)
            done = sum(c["end_item"] - c["first_item"] for c in chunks if c["status"] == "done")
            if done != reported:
                reported = done
                ctx.run.hooks.on_map_progress(run_id=run_id, step=step, done=done, total=len(items),
                                              batch_done=True, rate=None)
            if all(c["status"] == "done" for c in chunks):  # the map node now gathers the outputs: read at once
                ctx.run.journal_read[(step, visit)] = store.journal_entries(run_id, step, visit)
                return
            # a chunk nobody took, one whose holder died, or one that failed elsewhere: run here — a failure
            # (the cost limit, an error on_error does not tolerate) then fails the run as it would locally
            free = next((c for c in chunks if c["status"] in ("pending", "failed") or
                         (c["status"] == "running" and not held_elsewhere(c["worker"], c["heartbeat"]))), None)
            if free is None or not await run_chunk(ctx, items, free["chunk"]):
                await asyncio.sleep(POLL)

    return distribute


async def run_chunk(ctx: StepContext, items: list[Any], number: int) -> bool:
    """Claim chunk `number` of this map visit and run it here; False when it was done or held by another."""
    rc, step, visit = ctx.run, ctx.step.id, ctx.visit
    holder = holder_id()
    chunk = rc.store.chunk_claim(rc.run_id, step, visit, number, holder, held_elsewhere)
    if chunk is None:
        return False
    first, end = chunk["first_item"], chunk["end_item"]
    rc.hooks.on_map_chunk(run_id=rc.run_id, step=step, chunk=number, first=first, end=end, status="started",
                          worker=WORKER["name"], holder=holder, host=HOST, delivery=chunk["runs"])
    started = time.monotonic()
    beat = _Heartbeat(lambda: rc.store.chunk_update(rc.run_id, step, visit, number, holder, heartbeat=time.time()))
    try:
        async with beat:
            _outputs, errors = await run_units(ctx, items, first, end, report=False)
    except asyncio.CancelledError:
        if not beat.lost:
            raise
        if (task := asyncio.current_task()) is not None:
            task.uncancel()  # the cancel was ours, not the caller's
        # another holder took the chunk while this process made no progress (stopped, starved): it runs it now
        rc.hooks.on_map_chunk(run_id=rc.run_id, step=step, chunk=number, first=first, end=end, status="taken over",
                              worker=WORKER["name"], holder=holder, host=HOST)
        return False
    except BaseException as exc:  # the cost limit, a cancel, an error on_error does not tolerate
        rc.store.flush()
        rc.store.chunk_update(rc.run_id, step, visit, number, holder, status="failed", heartbeat=time.time())
        rc.hooks.on_map_chunk(run_id=rc.run_id, step=step, chunk=number, first=first, end=end, status="failed",
                              worker=WORKER["name"], holder=holder, host=HOST, error=str(exc)[:500])
        raise
    rc.store.flush()  # usage queued by the last replies, with them
    rc.store.chunk_update(rc.run_id, step, visit, number, holder, status="done", heartbeat=time.time())
    rc.hooks.on_map_chunk(run_id=rc.run_id, step=step, chunk=number, first=first, end=end, status="done",
                          worker=WORKER["name"], holder=holder, host=HOST,
                          seconds=round(time.monotonic() - started, 3),
                          errors=len(errors))
    return True


async def run_offered_chunk(rc: RunContext, step_id: str, visit: int, number: int) -> bool:
    """A chunk message on a worker: rebuild the map step's view from the coordinator's snapshot and run it."""
    state = rc.store.journal_get(rc.run_id, SNAPSHOT, visit, step_id)
    if state is None:
        return False  # the coordinator has not written it: the message is older than the map visit
    step = next(s for s in rc.playbook.spec.steps if s.id == step_id)
    rc.journal_fresh[(step_id, visit)] = None
    ctx = StepContext(rc, step, visit, state)
    return await run_chunk(ctx, map_items(ctx), number)


class _Heartbeat:
    """`async with`: beats on the chunk every HEARTBEAT seconds while the body runs; should a beat find the chunk no
    longer this holder's, the body is cancelled (`lost`), so the old holder asks nothing more for it."""

    def __init__(self, beat: Callable[[], bool]) -> None:
        self.beat = beat
        self.lost = False
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> None:
        body = asyncio.current_task()

        async def beating() -> None:
            while True:
                await asyncio.sleep(liveness.HEARTBEAT)
                if not self.beat():
                    self.lost = True
                    if body is not None:
                        body.cancel()
                    return

        self._task = asyncio.ensure_future(beating())

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
