"""A run whose process was killed (kill -9, a timeout, a crash) is shown as 已中断 — not `running` with its clock
climbing — on `runs list`, `runs show` and the web page, with the step and item count it reached; the page's
button resumes it once, and nothing finished is asked again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from starlette.testclient import TestClient

from runner.config import load_project
from runner.engine.liveness import process_alive, process_start
from runner.server import create_app
from runner.testing import FakeLLMServer
from tests.conftest import cli, write_playbook

SLOW_MAP = """
name: slow_map
steps:
  - id: prepare
    tool: file.write
    with: {path: items.md, content: 十二条}
  - id: notes
    map: "${{ range(12) | list }}"
    as: n
    concurrency: 1
    llm:
      prompt: "第 ${{ n }} 条：写一句话"
outputs: {count: "${{ steps.notes.items | length }}"}
"""


def events(project_dir: Path, run_id: str) -> list[dict[str, object]]:
    path = project_dir / ".playbook" / "runs" / run_id / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.endswith("}")]


def test_a_killed_run_reads_as_interrupted_and_resumes_from_the_button(project_dir: Path,
                                                                       server: FakeLLMServer) -> None:
    path = write_playbook(project_dir, SLOW_MAP)
    server.latency = 0.4
    process = subprocess.Popen([sys.executable, "-m", "runner", "run", str(path), "--run-id", "killed"],
                               cwd=project_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while sum(e.get("event") == "map_progress" for e in events(project_dir, "killed")) < 3:
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    asked_before = len(server.requests)
    done_before = max(int(e["done"]) for e in events(project_dir, "killed")  # type: ignore[call-overload]
                      if e.get("event") == "map_progress")

    listed = cli("runs", "list", cwd=project_dir)
    assert "killed\tslow_map\t已中断\t" in listed.stdout, listed.stdout
    shown = cli("runs", "show", "killed", cwd=project_dir)
    assert "状态：已中断" in shown.stdout and "停在步骤 notes" in shown.stdout
    assert f"已完成 {done_before} / 12 项" in shown.stdout and "playbook resume killed" in shown.stdout
    duration = shown.stdout.split("耗时：")[1].split()[0]
    time.sleep(1.2)  # a dead run's clock has stopped
    assert cli("runs", "show", "killed", cwd=project_dir).stdout.split("耗时：")[1].split()[0] == duration

    server.latency = 0.0
    with TestClient(create_app(load_project(project_dir)), client=("127.0.0.1", 50000),
                    base_url="http://127.0.0.1:8600") as http:
        assert "已中断" in http.get("/").text
        page = http.get("/runs/killed").text
        assert 'id="interrupted"' in page and "<code>notes</code>" in page and "继续运行" in page
        assert f"已完成 {done_before} / 12 项" in page and "playbook resume killed" in page
        assert http.get("/api/runs/killed").json()["shown_status"] == "interrupted"
        form = {"csrf": http.cookies["playbook_csrf"]}
        resumed = http.post("/runs/killed/resume", data=form, follow_redirects=False)
        assert resumed.status_code == 303
        again = http.post("/runs/killed/resume", data=form, follow_redirects=False)  # a second click: refused
        assert again.status_code == 409
        deadline = time.monotonic() + 60
        while http.get("/api/runs/killed").json()["status"] != "done":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert "已完成" in http.get("/runs/killed").text
    asked_again = [r["prompt"] for r in server.requests[asked_before:]]
    finished = {r["prompt"] for r in server.requests[:done_before]}
    assert len(asked_again) == 12 - done_before and not finished & set(asked_again)


def test_a_reused_pid_is_not_the_owner() -> None:
    """After a kill -9 the pid may belong to an unrelated process: the recorded start time tells them apart."""
    me = os.getpid()
    assert process_alive(me, process_start(me))
    assert not process_alive(me, (process_start(me) or 0) - 1000)  # same number, another start: not our run
    assert not process_alive(2**22 + 12345, None)


def test_a_run_whose_process_makes_no_progress_is_taken_over(project_dir: Path, server: FakeLLMServer) -> None:
    """A process alive but making no progress (stopped with SIGSTOP: neither its steps nor its heartbeat go on)
    holds its run only until its heartbeat is stale — its pid alone no longer keeps the run. `playbook resume` then
    takes it over and finishes it; the old process, woken, stops at its next check: it asks nothing more, says
    so, and does not write over the new owner's record."""
    from runner.engine import liveness
    from runner.store import open_store

    with (project_dir / "playbook.toml").open("a", encoding="utf-8") as toml:
        toml.write("\n[queue]\nheartbeat = 0.5\n")
    path = write_playbook(project_dir, SLOW_MAP)
    server.latency = 0.4
    process = subprocess.Popen([sys.executable, "-m", "runner", "run", str(path), "--run-id", "stuck"],
                               cwd=project_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = open_store(load_project(project_dir))
    liveness.configure(0.5)  # as this project's processes do
    try:
        deadline = time.monotonic() + 60
        while sum(e.get("event") == "map_progress" for e in events(project_dir, "stuck")) < 3:
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGSTOP)
        while liveness.run_alive(run := store.get_run("stuck") or {}):  # stale after 4 missed beats
            assert time.monotonic() < deadline + 60, run
            time.sleep(0.1)
        assert process_alive(process.pid, process_start(process.pid))  # alive all the same
        resumed = cli("resume", "stuck", cwd=project_dir)
        assert resumed.returncode == 0, resumed.stderr
        asked = len(server.requests)
        os.kill(process.pid, signal.SIGCONT)
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 1 and "已由其他进程接手" in stderr, stderr
        run = store.get_run("stuck") or {}
        assert run["status"] == "done" and run["outputs"] == {"count": 12}, run
        # the woken process may finish the one call it had in flight; it starts none after
        assert len(server.requests) - asked <= 1
    finally:
        store.close()
        liveness.configure(10.0)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
            process.kill()


def test_a_process_whose_event_loop_is_wedged_stops_claiming_its_run(tmp_path: Path) -> None:
    """The heartbeat is written from a thread, which lives on when the run's event loop is wedged: it beats only
    while the loop answers, so a wedged run goes stale (others may take it over), and beats again if it wakes."""
    import asyncio
    import threading

    from runner.engine import liveness
    from runner.engine.heartbeat import Heartbeat
    from runner.store import SqliteStore

    store = SqliteStore(tmp_path / "state.db")
    store.create_run(id="wedged", playbook="p", path="p.yaml", source="", status="running", started_at=time.time(),
                     inputs={}, **liveness.this_process())
    store.update_run("wedged", heartbeat=time.time())
    liveness.configure(0.2)
    went_stale, seen = threading.Event(), []

    def watch() -> None:  # another process's view of the run
        deadline = time.monotonic() + 60
        while (alive := liveness.run_alive(store.get_run("wedged") or {})) and time.monotonic() < deadline:
            time.sleep(0.05)
        seen.append("stale" if not alive else "still beating after 60 s")
        went_stale.set()

    async def drive() -> float:
        with Heartbeat(store, "wedged", stuck_after=0.6):
            threading.Thread(target=watch, daemon=True).start()
            went_stale.wait(timeout=60)  # the loop wedged: nothing runs on it until the run is seen stale
            woke = time.time()
            while (store.get_run("wedged") or {}).get("heartbeat", 0) <= woke:  # beats again once it answers
                await asyncio.sleep(0.05)
            return woke

    try:
        woke = asyncio.run(asyncio.wait_for(drive(), 60))
        assert seen == ["stale"]
        assert liveness.run_alive(store.get_run("wedged") or {}) and woke > 0
    finally:
        liveness.configure(10.0)
        store.close()
