"""`playbook scheduler` and `playbook schedule list|run-now|pause|resume`."""

from __future__ import annotations

import signal
from collections.abc import Callable, Coroutine
from typing import Any

import typer
from rich.markup import escape

from runner.cli.app import app
from runner.cli.common import err, execute, guard, out, project_here
from runner.cli.observing import LogJson, LogLevel, MetricsHost, MetricsPort, serve_metrics, start_logs
from runner.i18n import _

schedule_app = typer.Typer(help=_("List, pause, resume or start schedules now."), no_args_is_help=True)
app.add_typer(schedule_app, name="schedule")


def _with_scheduler(action: Callable[[Any], Coroutine[Any, Any, Any]]) -> Any:
    from runner.assembly import assemble, settled
    from runner.schedule.scheduler import Scheduler

    project = project_here()
    runner = assemble(project)

    async def act(scheduler: Any) -> Any:
        async def then_wait() -> Any:
            result = await action(scheduler)
            await scheduler.wait()
            return result

        return await settled(runner, then_wait())

    try:
        scheduler = Scheduler(project, runner)
        for problem in scheduler.problems:
            err.print("[yellow]" + _("warning") + f"[/] {escape(problem)}")
        import asyncio  # here, not at load: `playbook --help` needs no event loop (nor the ssl it imports)

        return asyncio.run(act(scheduler))
    finally:
        runner.close()


@app.command()
def scheduler(log_json: LogJson = None, log_level: LogLevel = "INFO", metrics_port: MetricsPort = 0,
              metrics_host: MetricsHost = "127.0.0.1") -> None:
    """Run due schedules until stopped (Ctrl-C): playbook `triggers:` and [[schedules]] in playbook.toml."""
    def observed() -> None:
        start_logs(project_here(), log_json, log_level, worker="scheduler")
        if metrics_port:
            serve_metrics(metrics_port, metrics_host)

    async def forever(s: Any) -> None:
        import asyncio

        from runner.dsl.cron import local_text

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        for item in s.schedules:
            due = local_text(s.state(item)["next_due"], item.timezone)
            out.print(_("{id}: '{cron}' {timezone}, next {due}").format(
                id=item.id, cron=item.cron, timezone=item.timezone, due=due), markup=False)
        out.print(_("scheduler running ({count} schedules); Ctrl-C to stop").format(count=len(s.schedules)),
                  markup=False)
        await s.forever(stop=stop, say=lambda text: err.print(text, markup=False))
        out.print(_("stopping; runs in progress continue with `playbook resume`"), markup=False)

    guard(observed)
    guard(lambda: _with_scheduler(forever))


@schedule_app.command("list")
def schedule_list() -> None:
    """Every schedule: cron, next time, what a missed time does, paused or not, the last run."""
    async def show(s: Any) -> None:
        from rich.table import Table

        from runner.dsl.cron import local_text

        zones = {item.timezone for item in s.schedules}
        one_zone = len(zones) == 1
        if one_zone:  # one timezone for all: said once, so a row fits 80 columns
            out.print(_("Time zone: {zone}").format(zone=next(iter(zones))), markup=False)
        table = Table(_("Schedule"), "cron", _("Next run"), _("When missed"), _("State"), _("Last"), box=None)
        for item in s.schedules:
            state = s.state(item)
            fires = s.store.schedule_fires(item.id, limit=1)
            next_due = local_text(state["next_due"], item.timezone).rsplit(" ", 1)[0]  # without the zone's letters
            table.add_row(item.id, item.cron, next_due if one_zone else f"{next_due}（{item.timezone}）",
                          CATCH_UP.get(item.catch_up, item.catch_up), _paused(state["paused"]),
                          _last(fires[0], item.timezone) if fires else "—")
        out.print(table)

    guard(lambda: _with_scheduler(show))


CATCH_UP = {"once": _("run once"), "skip": _("skip")}


def _paused(paused: bool) -> str:
    return _("paused") if paused else _("active")


def _last(fire: dict[str, Any], timezone: str) -> str:
    """The last time a schedule fired and what came of it, short (`playbook runs` has the run)."""
    from runner.dsl.cron import local_text
    from runner.wording import fire_action

    return f"{local_text(fire['due'], timezone)[5:16]} {fire_action(str(fire['action']))}"


def _set_paused(schedule_id: str, paused: bool) -> None:
    async def act(s: Any) -> None:
        item = s.get(schedule_id)
        s.state(item)
        s.store.schedule_pause(item.id, paused)
        out.print(f"{item.id}：{_paused(paused)}", markup=False)

    guard(lambda: _with_scheduler(act))


@schedule_app.command("pause")
def schedule_pause(schedule_id: str) -> None:
    """Stop starting runs of a schedule until `resume`."""
    _set_paused(schedule_id, True)


@schedule_app.command("resume")
def schedule_resume(schedule_id: str) -> None:
    """Start runs of a paused schedule again (missed times follow its catch_up)."""
    _set_paused(schedule_id, False)


@schedule_app.command("run-now")
def schedule_run_now(schedule_id: str) -> None:
    """Start a schedule's playbook now, with its inputs, in the foreground."""
    from runner.schedule.scheduler import Scheduler

    async def known(s: Any) -> None:  # an unknown id is a user error before anything starts
        s.get(schedule_id)

    guard(lambda: _with_scheduler(known))

    async def action(runner: Any, project: Any) -> Any:
        return await Scheduler(project, runner).run_now(schedule_id)

    execute(action)
