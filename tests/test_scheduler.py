"""The scheduler with a controllable clock: one run per due time, across restarts; missed times by policy;
no overlap with an unfinished run; approval deadlines applied."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from runner.config import load_project
from runner.engine.execute import Runner
from runner.schedule.scheduler import Fire, Scheduler
from runner.testing import FakeLLMServer
from tests.conftest import cli

SHANGHAI = ZoneInfo("Asia/Shanghai")

DAILY = """
name: morning
inputs: {topic: {type: string, default: 无}}
triggers:
  - {cron: "0 9 * * *", timezone: Asia/Shanghai, inputs: {topic: 热搜}%s}
steps:
  - {id: note, tool: file.write, with: {path: note.txt, content: "${{ inputs.topic }}"}}
"""

WAITING = """
name: morning
triggers:
  - {cron: "0 9 * * *", timezone: Asia/Shanghai}
steps:
  - {id: draft, tool: file.write, with: {path: d.txt, content: x}}
  - id: check
    approval: {title: 看一下, show: "${{ steps.draft.path }}", timeout: 2h, on_timeout: approve}
"""


class Clock:
    def __init__(self, moment: datetime) -> None:
        self.now = moment.timestamp()

    def set(self, moment: datetime) -> None:
        self.now = moment.timestamp()

    def __call__(self) -> float:
        return self.now


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=SHANGHAI)


def make_project(folder: Path, playbook: str, catch_up: str = "") -> Path:
    (folder / "playbooks").mkdir()
    (folder / "playbooks" / "morning.yaml").write_text(playbook % (f", catch_up: {catch_up}" if catch_up else "")
                                                       if "%s" in playbook else playbook, encoding="utf-8")
    (folder / "playbook.toml").write_text("", encoding="utf-8")
    return folder


def tick(clock: Clock) -> list[Fire]:
    """A fresh scheduler process (as after a restart) ticking once, its runs awaited."""
    async def go() -> list[Fire]:
        runner = Runner(load_project())
        try:
            scheduler = Scheduler(load_project(), runner, clock=clock)
            fires = await scheduler.tick()
            await scheduler.wait()
            return fires
        finally:
            runner.close()

    return asyncio.run(go())


def runs(folder: Path) -> list[str]:
    return sorted(p.name for p in (folder / ".playbook" / "runs").glob("*")) \
        if (folder / ".playbook" / "runs").exists() else []


def test_due_at_nine_starts_exactly_one_run_even_across_a_restart(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(make_project(tmp_path, DAILY))
    clock = Clock(at(24, 8, 59))
    assert tick(clock) == []  # first sight of the schedule: next due 09:00, nothing back-filled
    clock.set(at(24, 9, 0, 5))
    fires = tick(clock)
    assert [(f.schedule, f.action) for f in fires] == [("morning#1", "started")]
    assert fires[0].due == at(24, 9).timestamp()
    clock.set(at(24, 9, 0, 40))  # the scheduler restarted (a new process) within the same minute
    assert tick(clock) == []
    assert len(runs(tmp_path)) == 1
    (run,) = runs(tmp_path)
    assert (tmp_path / ".playbook" / "runs" / run / "note.txt").read_text(encoding="utf-8") == "热搜"
    clock.set(at(25, 9, 1))
    assert [f.action for f in tick(clock)] == ["started"] and len(runs(tmp_path)) == 2


@pytest.mark.parametrize(("policy", "expected_runs"), [("once", 1), ("skip", 0)])
def test_missed_days_follow_the_catch_up_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: str,
                                                expected_runs: int) -> None:
    monkeypatch.chdir(make_project(tmp_path, DAILY, policy))
    clock = Clock(at(24, 8, 0))
    tick(clock)
    clock.set(at(27, 10, 30))  # down for three 09:00s
    fires = tick(clock)
    assert len(fires) == 1 and fires[0].due == at(27, 9).timestamp()  # one decision for the latest time
    assert fires[0].action == ("started" if policy == "once" else "skipped: missed")
    assert len(runs(tmp_path)) == expected_runs
    clock.set(at(27, 11))
    assert tick(clock) == []  # the next due time is tomorrow 09:00
    clock.set(at(28, 9, 0, 1))
    assert [f.action for f in tick(clock)] == ["started"]


def test_a_run_waiting_for_approval_is_not_overlapped_and_times_out(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(make_project(tmp_path, WAITING))
    clock = Clock(at(24, 8, 0))
    tick(clock)
    clock.set(at(24, 9, 0, 1))
    assert [f.action for f in tick(clock)] == ["started"]
    clock.set(at(25, 9, 0, 1))  # yesterday's run still waits (its 2 h deadline is in real time, not passed)
    fires = tick(clock)
    assert [f.action for f in fires] == ["skipped: overlap"] and "还没有结束" in (fires[0].detail or "")
    assert len(runs(tmp_path)) == 1


def test_schedule_commands_list_pause_resume_and_run_now(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(make_project(tmp_path, DAILY))
    listed = cli("schedule", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "时区：Asia/Shanghai" in listed.stdout
    (row,) = [line for line in listed.stdout.splitlines() if "morning#1" in line]  # one line, in 80 columns
    assert "0 9 * * *" in row and "补一次" in row and "启用" in row
    from rich.cells import cell_len

    assert max(cell_len(line) for line in listed.stdout.splitlines()) <= 80
    assert cli("schedule", "pause", "morning#1", cwd=tmp_path).returncode == 0
    assert "已暂停" in cli("schedule", "list", cwd=tmp_path).stdout
    clock = Clock(datetime.now(SHANGHAI).replace(year=2030))
    assert tick(clock) == []  # paused: nothing starts however late it is
    assert cli("schedule", "resume", "morning#1", cwd=tmp_path).returncode == 0
    now = cli("schedule", "run-now", "morning#1", cwd=tmp_path)
    assert now.returncode == 0, now.stderr
    assert len(runs(tmp_path)) == 1
    unknown = cli("schedule", "pause", "mornin#1", cwd=tmp_path)
    assert unknown.returncode == 2 and "没有定时任务 'mornin#1'（现有：morning#1）" in unknown.stderr


def test_bad_cron_is_a_validation_error_with_its_location(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ntriggers:\n  - {cron: \"0 25 * * *\"}\nsteps:\n  - {id: a, tool: file.write, "
                    "with: {path: a.txt, content: x}}\n", encoding="utf-8")
    result = cli("validate", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert f"{path}:3:" in result.stderr and "cron 表达式 '0 25 * * *' 有误" in result.stderr


SLOW = """
name: morning
triggers:
  - {cron: "0 9 * * *", timezone: Asia/Shanghai}
steps:
  - {id: write, llm: {prompt: 写今天的早报}}
outputs: {text: "${{ steps.write.output }}"}
"""


def test_a_run_left_running_by_a_killed_scheduler_is_resumed_by_the_next(project_dir: Path,
                                                                         server: FakeLLMServer) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    (project_dir / "playbooks").mkdir()
    (project_dir / "playbooks" / "morning.yaml").write_text(SLOW, encoding="utf-8")
    server.latency = 30.0
    owner = subprocess.Popen([sys.executable, "-m", "runner", "schedule", "run-now", "morning#1"], cwd=project_dir,
                             env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not server.requests:
        assert time.monotonic() < deadline and owner.poll() is None
        time.sleep(0.1)
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    server.latency = 0.0
    runner = Runner(load_project())
    scheduler = Scheduler(load_project(), runner)
    stuck = [r for r in runner.store.list_runs() if r["status"] == "running"]
    assert len(stuck) == 1
    resumed = asyncio.run(_recover(scheduler))
    assert resumed == [stuck[0]["id"]]
    assert runner.store.get_run(stuck[0]["id"])["status"] == "done"
    runner.close()


async def _recover(scheduler: Scheduler) -> list[str]:
    resumed = await scheduler.recover()
    await scheduler.wait()
    return resumed
