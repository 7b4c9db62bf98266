"""The scheduler: starts due runs of playbook `triggers:` and `[[schedules]]` from playbook.toml.

Rules (also in the README):
- a schedule never overlaps itself: if its previous run is still running or waiting for approval, the
  due time is skipped and recorded as `skipped: overlap`;
- missed times (the scheduler was down) follow the schedule's `catch_up`: `once` starts one run for
  all of them, `skip` starts none and waits for the next time; a time less than `grace` seconds old
  is never "missed";
- each due time is claimed in the store with a compare-and-set before its run starts, and the run id is
  recorded first, so a restart (or a second scheduler) neither loses nor doubles a run;
- waiting approvals past their deadline get their `on_timeout` decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner import signals
from runner.config import Project
from runner.dsl.cron import next_time
from runner.dsl.validate import load_and_validate
from runner.engine import liveness
from runner.engine.decisions import timeout_decision
from runner.engine.execute import Runner, RunOutcome, new_run_id
from runner.engine.liveness import this_process
from runner.engine.preflight import prepare_inputs
from runner.errors import PlaybookError, RunError
from runner.i18n import _
from runner.store import store_lost
from runner.team import queue


@dataclass(frozen=True)
class Schedule:
    id: str
    playbook: Path
    cron: str
    timezone: str
    inputs: dict[str, Any] = field(default_factory=dict)
    catch_up: str = "once"


def discover(project: Project) -> tuple[list[Schedule], list[str]]:
    """Schedules from the triggers of the project's playbooks and from playbook.toml; problems are
    returned, not raised, so one broken playbook does not stop the others' schedules."""
    settings = project.settings.scheduler
    schedules: list[Schedule] = []
    problems: list[str] = []
    files = sorted({Path(p) for pattern in settings.playbooks for p in glob.glob(str(project.root / pattern))})
    for path in files:
        try:
            playbook = load_and_validate(path)
        except PlaybookError as exc:
            problems.append(_("{path}: not scheduled: {name}").format(path=path, name=str(exc).splitlines()[0]))
            continue
        for i, trigger in enumerate(playbook.spec.triggers, start=1):
            schedules.append(Schedule(f"{playbook.spec.name}#{i}", path.resolve(), trigger.cron, trigger.timezone,
                                      trigger.inputs, trigger.catch_up or settings.catch_up))
    for entry in project.settings.schedules:
        schedules.append(Schedule(entry.name, (project.root / entry.playbook).resolve(), entry.cron,
                                  entry.timezone or project.settings.timezone, entry.inputs,
                                  entry.catch_up or settings.catch_up))
    return schedules, problems


@dataclass
class Fire:
    schedule: str
    due: float
    action: str  # started | skipped: overlap | skipped: missed | error
    run_id: str | None = None
    detail: str | None = None


class Scheduler:
    """One tick decides and claims; runs go on in background tasks. `clock` is injectable for tests."""

    def __init__(self, project: Project, runner: Runner, *, clock: Callable[[], float] = time.time) -> None:
        self.project = project
        self.runner = runner
        self.store = runner.store
        self.clock = clock
        self.schedules, self.problems = discover(project)
        self.tasks: set[asyncio.Task[RunOutcome]] = set()

    def get(self, schedule_id: str) -> Schedule:
        for schedule in self.schedules:
            if schedule.id == schedule_id:
                return schedule
        known = ", ".join(s.id for s in self.schedules) or "none"
        raise PlaybookError(_("no schedule '{schedule_id}' (schedules: {known})").format(
                                schedule_id=schedule_id, known=known))

    def state(self, schedule: Schedule) -> dict[str, Any]:
        state = self.store.schedule_state(schedule.id)
        if state is None:  # a new schedule starts from now: no back-fill of times before it existed
            self.store.schedule_init(schedule.id, next_time(schedule.cron, schedule.timezone, self.clock()))
            state = self.store.schedule_state(schedule.id)
        assert state is not None
        return state

    async def tick(self) -> list[Fire]:
        """Start what is due now; returns what was decided."""
        fires = [fire for schedule in self.schedules if (fire := await self._tick_one(schedule))]
        await self._expire_approvals()
        self.recover_orphans()
        return fires

    async def _tick_one(self, schedule: Schedule) -> Fire | None:
        now = self.clock()
        state = self.state(schedule)
        due = state["next_due"]
        if state["paused"] or now < due:
            return None
        latest = due  # the last fire time not after now
        while (following := next_time(schedule.cron, schedule.timezone, latest)) <= now:
            latest = following
        grace = self.project.settings.scheduler.grace
        if schedule.catch_up == "skip" and now - latest > grace:
            fire = Fire(schedule.id, latest, "skipped: missed", detail=_("{number:.0f}s late, catch_up: skip").format(
                                                                           number=now - latest))
        elif (active := self._active_run(schedule.id)) is not None:
            fire = Fire(schedule.id, latest, "skipped: overlap", detail=_("run {active} has not finished").format(
                                                                            active=active))
        else:
            fire = Fire(schedule.id, latest, "started", run_id=new_run_id(schedule.playbook.stem))
        # the due time is claimed together with the run id it starts: the README's promise, made true
        if not self.store.schedule_claim_fire(schedule.id, due, next_time(schedule.cron, schedule.timezone, now),
                                              fire.due, fire.action, fire.run_id, fire.detail):
            return None  # another scheduler claimed this due time
        signals.signal("schedule_fired", schedule=schedule.id, action=fire.action, lag=now - latest)
        if fire.run_id is not None:
            self._start(schedule, fire)
        return fire

    def _active_run(self, schedule_id: str) -> str | None:
        from runner.engine.liveness import owner_alive

        for fire in self.store.schedule_fires(schedule_id, limit=5):
            run = self.store.get_run(fire["run_id"]) if fire["run_id"] else None
            if run and (run["status"] == "waiting" or
                        (run["status"] == "running" and owner_alive(run))):
                return str(run["id"])
        return None

    def _start(self, schedule: Schedule, fire: Fire) -> None:
        self.tasks.add(task := asyncio.ensure_future(self._run(schedule, fire)))
        task.add_done_callback(self.tasks.discard)

    async def _run(self, schedule: Schedule, fire: Fire) -> RunOutcome:
        try:
            playbook = load_and_validate(schedule.playbook)
            inputs = prepare_inputs(playbook, schedule.inputs, self.project, file=str(schedule.playbook))
        except PlaybookError as exc:
            self.store.schedule_fire(fire.schedule, fire.due, "error", fire.run_id, str(exc).splitlines()[0])
            return RunOutcome(run_id=fire.run_id or "", status="failed", error=str(exc))
        if queue.broker(self.project) and fire.run_id:  # a team server: a worker runs it
            queue.enqueue_start(self.project, self.store, playbook, inputs, fire.run_id)
            return RunOutcome(run_id=fire.run_id, status="queued")
        return await self.runner.start(playbook, inputs, run_id=fire.run_id)

    async def run_now(self, schedule_id: str) -> RunOutcome:
        schedule = self.get(schedule_id)
        fire = Fire(schedule.id, self.clock(), "started", run_id=new_run_id(schedule.playbook.stem),
                    detail="run-now")
        self.store.schedule_fire(fire.schedule, fire.due, fire.action, fire.run_id, fire.detail)
        return await self._run(schedule, fire)

    async def recover(self) -> list[str]:
        """Start runs whose due time was claimed but which never began, and resume runs whose owner died
        (a scheduler killed mid-run leaves them `running` with a dead process id)."""
        from runner.engine.liveness import owner_alive

        started = []
        for schedule in self.schedules:
            for fire in self.store.schedule_fires(schedule.id, limit=3):
                run = self.store.get_run(fire["run_id"]) if fire["run_id"] else None
                if fire["action"] == "started" and fire["run_id"] and run is None:
                    self._start(schedule, Fire(schedule.id, fire["due"], "started", fire["run_id"]))
                    started.append(fire["run_id"])
                elif run is not None and run["status"] == "running" and \
                        not owner_alive(run):
                    self._continue(run, None)
                    started.append(run["id"])
        return started

    def recover_orphans(self) -> list[str]:
        """A team server: runs whose worker died (kill -9, a lost machine) go back to the queue, whether or not
        a schedule started them — the queue's own redelivery waits for its visibility timeout."""
        from runner.engine.liveness import owner_alive

        if not queue.broker(self.project):
            return []
        orphans = [run for run in self.store.list_runs(limit=200)
                   if run["status"] == "running" and not owner_alive(run)]
        for run in orphans:
            self._continue(run, None)
        return [run["id"] for run in orphans]

    async def _expire_approvals(self) -> None:
        for run in self.store.list_runs(limit=200):
            if run["status"] != "waiting":
                continue
            try:
                decision = timeout_decision(self.store, run["id"])
            except RunError:
                continue  # on_timeout: fail has marked the run failed
            if decision is not None:
                self._continue(run, decision)

    def _continue(self, run: dict[str, Any], decision: dict[str, Any] | None) -> None:
        """Resume a run whose owner died, or apply a timed-out approval: here, or on a worker."""
        if not queue.broker(self.project):
            self.tasks.add(task := asyncio.ensure_future(self.runner.resume(run["id"], decision=decision)))
            task.add_done_callback(self.tasks.discard)
            return
        try:
            if decision is not None:
                self.runner.claim(run["id"], decision)
            elif not self.store.take_over(run, **this_process()):
                return  # someone else took it over just now
        except RunError:
            return  # decided by someone else first
        queue.enqueue_continue(self.project, self.store, run["id"], decision)

    async def wait(self) -> None:
        """Let the runs started so far reach their end or an approval."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def forever(self, *, stop: asyncio.Event | None = None, poll: float = 30.0,
                      say: Callable[[str], None] = lambda text: None) -> None:
        """Tick until `stop`. A store that stops answering (a Postgres restart or failover) pauses the ticks, said
        once, and they go on when it is back: the claims in the store make a tick repeated after it safe."""
        recovered, away = False, False
        while stop is None or not stop.is_set():
            pause = poll
            try:
                if not recovered:
                    await self.recover()
                    recovered = True
                await self.tick()
                dues = [self.state(s)["next_due"] for s in self.schedules]
                pause = max(0.5, min([poll, *(d - self.clock() for d in dues)]))
                if queue.broker(self.project):  # a team server: a run whose owner is gone waits at most one beat
                    pause = min(pause, liveness.HEARTBEAT)
                if away:
                    say("the store answers again; schedules go on")
                away = False
            except Exception as exc:
                if not store_lost(exc):
                    raise
                if not away:
                    say(_("the store is not answering ({name}); trying again every {poll:g} s — due times are kept "
                          "and start once it is back").format(name=str(exc).splitlines()[0], poll=poll))
                away = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait() if stop else asyncio.sleep(pause), timeout=pause)
