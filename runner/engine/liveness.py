"""Whether the process that owns a run is still alive, and what a run's status means to a reader.

A run records its owner's pid and that process's start time. A pid alone is not enough: after a kill -9
(or a reboot) the number is reused by an unrelated process, and the run would look alive forever. The
start time (from /proc, Linux) tells the original owner from a newcomer with the same number.

On a team server the owner may be a worker on another machine, whose processes this one cannot see: a run
also records its owner's host, and whoever drives a run writes a heartbeat on it (runner/engine/heartbeat.py).
An owner counts as alive while its heartbeat is fresh — and, on this machine, while its process lives: a process
alive but wedged stops beating, and is then no owner either."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

from runner.errors import was_interrupted

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
HOST = socket.gethostname()
HEARTBEAT = 10.0  # seconds between heartbeats on what a process holds ([queue] heartbeat)
STALE = 4 * HEARTBEAT  # an owner silent this long is gone (killed, its machine lost, wedged)


def configure(heartbeat: float) -> None:
    """Take the project's `[queue] heartbeat`: every process of a project reads the same playbook.toml, so all
    agree on when an owner is gone."""
    global HEARTBEAT, STALE
    HEARTBEAT, STALE = heartbeat, 4 * heartbeat


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (state first); [] when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return []
    return stat[stat.rfind(")") + 2:].split()  # the command name may hold spaces and parentheses


def process_start(pid: int) -> float | None:
    """When process `pid` started, in seconds since boot; None when it does not exist or /proc is absent."""
    fields = _stat(pid)
    try:
        return int(fields[19]) / _TICKS  # field 22 of the whole line: starttime, in clock ticks
    except (IndexError, ValueError):
        return None


def this_process() -> dict[str, Any]:
    """The owner fields a run records: this process's pid, start time and host."""
    return {"pid": os.getpid(), "pid_started": process_start(os.getpid()), "host": HOST}


def holder_alive(pid: int | None, started: float | None, host: str | None, heartbeat: float | None) -> bool:
    """Whether the process that holds a run (or a map chunk) is alive and beating: by its heartbeat, and on this
    machine by its pid too (a kill -9 shows at once). A holder with no heartbeat yet (it has just claimed) is
    judged by its pid alone."""
    if heartbeat is not None and time.time() - heartbeat >= STALE:
        return False
    if host and host != HOST:
        return heartbeat is not None
    return process_alive(pid, started)


def run_alive(run: dict[str, Any]) -> bool:
    return holder_alive(run.get("pid"), run.get("pid_started"), run.get("host"), run.get("heartbeat"))


def process_alive(pid: int | None, started: float | None) -> bool:
    """Whether the process that recorded (pid, started) still runs — not another one that got its number."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if (_stat(pid) or ["?"])[0] in ("Z", "X"):  # killed, not yet reaped (an orphan where PID 1 never reaps)
        return False
    if started is None:
        return True  # recorded before start times were: the pid is all there is to go on
    now = process_start(pid)
    return now is None or abs(now - started) < 0.5


def owner_alive(run: dict[str, Any]) -> bool:
    """Whether *another* live process may still be running this run (this process never counts)."""
    mine = run.get("pid") == os.getpid() and run.get("host") in (None, HOST)
    return bool(run.get("pid")) and not mine and run_alive(run)


def shown_status(run: dict[str, Any]) -> str:
    """The status a person should see: a `running` run whose process is gone, and a run stopped by Ctrl-C
    or SIGTERM, are `interrupted` — resumable, with finished work kept."""
    if run["status"] == "running" and not run_alive(run):
        return "interrupted"
    if run["status"] == "failed" and was_interrupted(str(run["id"]).split(".")[0], run.get("error")):
        return "interrupted"
    return str(run["status"])


def last_activity(run_dir: Path) -> float | None:
    """When the run last wrote an event: where an interrupted run's clock stops."""
    try:
        return (run_dir / "events.jsonl").stat().st_mtime
    except OSError:
        return None


def duration(run: dict[str, Any], run_dir: Path) -> float | None:
    """Seconds the run took, or has taken so far; an interrupted run's stops at its last event."""
    if run["ended_at"]:
        return float(run["ended_at"] - run["started_at"])
    if run["status"] != "running":
        return None
    if shown_status(run) == "interrupted":
        end = last_activity(run_dir)
        return end - run["started_at"] if end else None
    return time.time() - float(run["started_at"])
