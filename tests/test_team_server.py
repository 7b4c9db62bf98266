"""A team server for real: `playbook worker` processes (Celery) on a throw-away Redis, every run's state in a
throw-away Postgres, the fake LLM server over HTTP. Workers are killed with kill -9; nothing is mocked."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from runner.config import load_project
from runner.store import open_store
from runner.testing import FakeLLMServer
from runner.testing.servers import WorkerPool, free_port
from tests.conftest import API_HEADERS, REVIEWED, cli, served_project, write_playbook

MAP = """
name: bigmap
inputs: {n: {type: integer, default: 2000}}
steps:
  - id: label
    map: "${{ range(inputs.n) | list }}"
    batch: 20
    concurrency: 4
    llm: {prompt: "标注第 ${{ item }} 条", output: {tag: string}}
  - id: save
    tool: sheet.write
    with: {path: labels.xlsx, rows: "${{ steps.label.items }}", columns: [item, tag]}
outputs: {n: "${{ steps.label.output | length }}"}
"""


@dataclass
class Team:
    folder: Path
    workers: WorkerPool
    store_url: str
    broker: str

    def run(self, run_id: str) -> dict[str, Any]:
        store = open_store(load_project(self.folder))
        try:
            run = store.get_run(run_id)
        finally:
            store.close()
        assert run is not None, run_id
        return run

    def wait(self, run_id: str, status: str = "done", timeout: float = 240) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (run := self.run(run_id))["status"] != status:
            assert run["status"] not in {"done", "failed", "cancelled"} - {status}, run["error"]
            if time.monotonic() > deadline:
                logs = "\n".join(p.read_text(errors="replace")[-1500:] for p in self.folder.glob("worker-*.log"))
                raise AssertionError(f"{run_id} stayed {run['status']}:\n{logs}")
            time.sleep(0.2)
        return run

    def events(self, run_id: str, kind: str) -> list[dict[str, Any]]:
        path = self.folder / ".playbook" / "runs" / run_id / "events.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        return [e for line in lines if (e := json.loads(line)).get("event") == kind]


@pytest.fixture
def team(project_dir: Path, server: FakeLLMServer, postgres_url: str, redis_url: str) -> Iterator[Team]:
    with (project_dir / "playbook.toml").open("a", encoding="utf-8") as toml:
        toml.write(f'\n[store]\nurl = "{postgres_url}"\n\n[queue]\nbroker = "{redis_url}"\nmap_chunk = 200\n')
    workers = WorkerPool(project_dir)
    try:
        yield Team(project_dir, workers, postgres_url, redis_url)
    finally:
        workers.close()


def _batches(server: FakeLLMServer) -> Counter[str]:
    """How often each batch of the map was asked for (by its first item)."""
    return Counter(r["prompt"].split("标注第 ")[1].split(" 条")[0] for r in server.requests
                   if "标注第" in r["prompt"] and r["status"] == 200)


def _asked_again(server: FakeLLMServer, killed_at: float) -> list[str]:
    """Batches asked twice whose first answer had been sent a second before the kill (and so was journaled): a
    batch whose first request was still in flight when its worker died is rightly asked again."""
    first: dict[str, float] = {}
    again = []
    for request in server.requests:
        if "标注第" not in request["prompt"]:
            continue
        batch = request["prompt"].split("标注第 ")[1].split(" 条")[0]
        if batch in first and first[batch] + server.latency < killed_at - 1.0:  # 1 s: a loaded machine's lag
            again.append(batch)
        first.setdefault(batch, request["time"])
    return again


def test_two_workers_run_a_scheduled_run_a_web_run_and_a_large_map(team: Team, server: FakeLLMServer) -> None:
    from runner.engine.execute import Runner
    from runner.schedule.scheduler import Scheduler

    playbooks = team.folder / "playbooks"
    playbooks.mkdir()
    write_playbook(playbooks, """
name: morning
triggers: [{cron: "0 9 * * *", timezone: Asia/Shanghai}]
steps:
  - {id: write, llm: {prompt: 写今天的早报}}
outputs: {text: "${{ steps.write.output }}"}
""", "morning.yaml")
    write_playbook(team.folder, MAP)
    server.latency = 0.05
    metrics_port = free_port()
    team.workers.start("w1", concurrency=2, options=("--metrics-port", str(metrics_port)))
    team.workers.start("w2", concurrency=2)
    big = cli("run", "pb.yaml", "--input", "n=10000", "--run-id", "big", "--detach", cwd=team.folder)
    assert big.returncode == 0 and "已排队" in big.stdout, big.stderr

    clock = [time.time()]
    project = load_project(team.folder)
    runner = Runner(project)
    scheduler = Scheduler(project, runner, clock=lambda: clock[0])
    clock[0] = scheduler.state(scheduler.schedules[0])["next_due"] + 1
    fires = asyncio.run(scheduler.tick())
    assert [f.action for f in fires] == ["started"]
    runner.close()

    with served_project(team.folder) as base:
        import httpx

        started = httpx.post(f"{base}/api/runs", json={"playbook": "morning", "inputs": {}},
                             headers=API_HEADERS).json()
        assert team.run(started["run_id"])["status"] in ("queued", "running", "done")
        from tests.test_observe import scrape

        queues = {dict(labels)["queue"] for (name, labels) in scrape(f"{base}/metrics")
                  if name == "playbook_queue_depth"}  # the server reads the queue's depth at each scrape
        assert queues == {"playbook.runs", "playbook.chunks"}

    for run_id in (fires[0].run_id, started["run_id"]):
        assert run_id is not None
        assert team.wait(run_id)["outputs"]["text"]
    done = team.wait("big", timeout=400)
    assert done["outputs"] == {"n": 10000}
    chunks = [e for e in team.events("big", "map_chunk") if e["status"] == "done"]
    assert sorted(e["chunk"] for e in chunks) == list(range(len(chunks)))  # each chunk done once
    assert sorted((e["first"], e["end"]) for e in chunks)[-1][1] == 10000
    assert sum(e["end"] - e["first"] for e in chunks) == 10000  # together they cover every item once
    assert {e["worker"].split("@")[0] for e in chunks} == {"w1", "w2"}  # both workers ran chunks
    assert max(_batches(server).values()) == 1  # no batch asked twice
    rows = list(load_workbook(team.folder / ".playbook" / "runs" / "big" / "labels.xlsx").active.iter_rows(
        min_row=2, values_only=True))
    assert [r[0] for r in rows] == list(range(10000))
    _check_worker_metrics_and_logs(team, metrics_port, chunks)


def _check_worker_metrics_and_logs(team: Team, port: int, chunks: list[dict[str, Any]]) -> None:
    """w1's /metrics sum what its pool processes did; its log (a file: JSON lines) names the runs it drove."""
    from tests.test_observe import scrape, value

    samples = scrape(f"http://127.0.0.1:{port}/metrics")
    done_by_w1 = sum(1 for e in chunks if e["worker"].startswith("w1@"))
    assert value(samples, "playbook_map_chunks_total", status="done") == done_by_w1 > 0
    batches = sum(-(-(e["end"] - e["first"]) // 20) for e in chunks if e["worker"].startswith("w1@"))
    mornings = value(samples, "playbook_runs_ended_total", playbook="morning", status="done")  # one call each
    assert value(samples, "playbook_llm_calls_total", model="default", cached="false") == batches + mornings
    assert value(samples, "playbook_llm_tokens_total", model="default", direction="in") > 0
    lines = [json.loads(line) for line in (team.folder / "worker-w1.log").read_text().splitlines()
             if line.startswith("{")]
    chunk_lines = [line for line in lines if line["event"] == "map_chunk" and line.get("status") == "done"]
    assert len(chunk_lines) == done_by_w1 and all(line["run_id"] == "big" for line in chunk_lines)
    assert all(line["worker"].startswith("w1@") for line in lines)
    assert any(line.get("logger", "").startswith("celery") for line in lines)  # Celery's own lines, same shape


def _map_on_two_workers(team: Team, server: FakeLLMServer, run_id: str) -> None:
    """The 2,000-item map, detached, on two one-slot workers; 300 ms per call."""
    write_playbook(team.folder, MAP)
    server.latency = 0.3
    team.workers.start("w1")
    team.workers.start("w2")
    assert cli("run", "pb.yaml", "--run-id", run_id, "--detach", cwd=team.folder).returncode == 0


def _check_map_finished_once(team: Team, server: FakeLLMServer, run_id: str, killed_at: float) -> None:
    done = team.wait(run_id, timeout=300)
    assert done["outputs"] == {"n": 2000}
    assert _asked_again(server, killed_at) == []  # every batch the dead worker journaled was not asked again
    assert sum(n - 1 for n in _batches(server).values()) <= 4  # only those in flight (its concurrency: 4)
    rows = list(load_workbook(team.folder / ".playbook" / "runs" / run_id / "labels.xlsx").active.iter_rows(
        min_row=2, values_only=True))
    assert [r[0] for r in rows] == list(range(2000))  # every row exactly once


def test_a_worker_killed_in_a_distributed_map_leaves_the_run_to_the_other(team: Team, server: FakeLLMServer) -> None:
    _map_on_two_workers(team, server, "m")
    deadline = time.monotonic() + 120
    holder = None
    while holder is None:  # a chunk held by the worker that does not coordinate the run
        assert time.monotonic() < deadline, team.events("m", "map_chunk")
        coordinator = team.run("m")["pid"]
        for event in team.events("m", "map_chunk"):
            name = event["worker"].split("@")[0]
            if event["status"] == "started" and coordinator not in team.workers.pids(name):
                holder = name
        time.sleep(0.1)
    time.sleep(2.0)  # well into the map: many batches journaled
    while True:  # kill while the holder is inside a chunk: some of its batches journaled, some in flight
        chunk_events = [e for e in team.events("m", "map_chunk") if e["worker"].startswith(f"{holder}@")]
        started = {e["chunk"] for e in chunk_events if e["status"] == "started"}
        if started - {e["chunk"] for e in chunk_events if e["status"] == "done"}:
            break
        assert time.monotonic() < deadline and team.run("m")["status"] == "running"
        time.sleep(0.02)
    killed_at = time.time()
    team.workers.kill(holder)
    _check_map_finished_once(team, server, "m", killed_at)
    taken_over = [e for e in team.events("m", "map_chunk") if e["status"] == "started" and e["delivery"] > 1]
    assert taken_over, "the dead worker's chunk was run again by another"


def test_the_coordinating_worker_killed_its_run_goes_on_elsewhere(team: Team, server: FakeLLMServer) -> None:
    from runner.engine.execute import Runner
    from runner.schedule.scheduler import Scheduler

    _map_on_two_workers(team, server, "c")
    deadline = time.monotonic() + 120
    while len(team.events("c", "map_chunk")) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    coordinator = next(name for name in ("w1", "w2") if team.run("c")["pid"] in team.workers.pids(name))
    killed_at = time.time()
    team.workers.kill(coordinator)
    project = load_project(team.folder)
    runner = Runner(project)
    assert Scheduler(project, runner).recover_orphans() == ["c"]  # the scheduler's tick does this on its own
    runner.close()
    _check_map_finished_once(team, server, "c", killed_at)


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium (scripts/setup)")
def test_an_approval_in_the_browser_resumes_after_the_workers_restarted(team: Team, server: FakeLLMServer) -> None:
    from playwright.sync_api import sync_playwright

    (team.folder / "playbooks").mkdir()
    write_playbook(team.folder / "playbooks", REVIEWED, "reviewed.yaml")
    team.workers.start("w1")
    started = cli("run", "playbooks/reviewed.yaml", "--run-id", "r", cwd=team.folder)
    assert started.returncode == 3 and "等待审核" in started.stdout, started.stderr  # followed until the pause
    team.workers.kill("w1")
    team.workers.start("w2")  # a different worker process from the one that ran the draft
    with served_project(team.folder) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page()
        page.goto(f"{base}/runs/r/approval")
        page.fill("#by", "运营小王")
        page.click("#approve")
        page.wait_for_url(f"{base}/runs/r")
        browser.close()
    done = team.wait("r")
    assert done["outputs"]["text"] and len(server.prompts("写一段总结")) == 1
    assert done["pid"] in team.workers.pids("w2")  # the new worker took the run over (its claim recorded it)


def test_four_workers_share_one_rate_limit(team: Team, server: FakeLLMServer) -> None:
    toml = team.folder / "playbook.toml"
    # the provider allows 6 requests per 2 s; the limit is set under it, as for any real provider: a request is
    # counted when it is sent and by the provider when it arrives, and on a busy machine (CI: four workers on
    # two cores) the two differ by up to a few hundred milliseconds (a 10% margin saw two 429s there)
    toml.write_text(toml.read_text().replace("structured_output = true",
                                             "structured_output = true\nrpm = 6\nrpm_window = 3.0", 1))
    server.faults.rpm, server.faults.rpm_window = 6, 2.0
    write_playbook(team.folder, """
name: many
inputs: {tag: {type: string}}
steps:
  - id: ask
    map: "${{ range(6) | list }}"
    concurrency: 6
    llm: {prompt: "限速 ${{ inputs.tag }} ${{ item }}"}
outputs: {n: "${{ steps.ask.output | length }}"}
""")
    for name in ("w1", "w2", "w3", "w4"):
        team.workers.start(name)
    for k in range(4):
        assert cli("run", "pb.yaml", "--input", f"tag=t{k}", "--run-id", f"rl{k}", "--detach",
                   cwd=team.folder).returncode == 0
    for k in range(4):
        assert team.wait(f"rl{k}", timeout=180)["outputs"] == {"n": 6}
    statuses = Counter(r["status"] for r in server.requests)
    assert statuses == {200: 24}, statuses  # 24 requests over ≥ 4 windows, not one refused
    times = sorted(r["time"] for r in server.requests)
    assert all(later - earlier >= 2.0 for earlier, later in zip(times, times[6:], strict=False))  # the provider's rule


def test_cancel_reaches_the_worker_and_status_shows_the_team(team: Team, server: FakeLLMServer) -> None:
    write_playbook(team.folder, MAP)
    server.latency = 0.5
    team.workers.start("w1")
    team.workers.wait_ready()
    assert cli("run", "pb.yaml", "--run-id", "x", "--detach", cwd=team.folder).returncode == 0
    deadline = time.monotonic() + 60
    while team.run("x")["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    shown = cli("status", cwd=team.folder)
    assert shown.returncode == 0, shown.stderr
    assert "worker：1 个" in shown.stdout and "w1@" in shown.stdout and "运行中 1" in shown.stdout
    cancelled = cli("cancel", "x", cwd=team.folder)
    assert cancelled.returncode == 0 and "已请求取消" in cancelled.stdout
    assert team.wait("x", "cancelled", timeout=60)["status"] == "cancelled"
    asked = len(server.requests)
    time.sleep(2)
    assert len(server.requests) <= asked + 4  # at most the requests already in flight


def test_a_worker_told_to_stop_finishes_its_run_first(team: Team, server: FakeLLMServer) -> None:
    write_playbook(team.folder, MAP)
    server.latency = 0.5  # 20 batches, 4 at a time: the run takes 2.5 s at least
    team.workers.start("w1")
    assert cli("run", "pb.yaml", "--input", "n=400", "--run-id", "g", "--detach", cwd=team.folder).returncode == 0
    deadline = time.monotonic() + 60
    while team.run("g")["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    asked = len(server.requests)
    assert team.workers.stop("w1") == 0  # SIGTERM: a warm shutdown
    assert asked < 20  # it was told to stop before the run had asked for every batch
    assert team.run("g")["status"] == "done"


def test_without_a_broker_detach_says_what_is_missing(project_dir: Path) -> None:
    write_playbook(project_dir, MAP)
    refused = cli("run", "pb.yaml", "--detach", cwd=project_dir)
    assert refused.returncode == 2 and "没有 [queue] broker" in refused.stderr and "Traceback" not in refused.stderr
    assert not (project_dir / ".playbook" / "state.db").exists()


def test_max_cost_holds_across_the_workers_of_a_distributed_map(team: Team, server: FakeLLMServer) -> None:
    write_playbook(team.folder, MAP)
    server.latency = 0.1
    team.workers.start("w1", concurrency=2)
    team.workers.start("w2", concurrency=2)
    started = cli("run", "pb.yaml", "--run-id", "costly", "--max-cost", "0.05", cwd=team.folder)
    assert started.returncode == 1 and "达到费用上限" in started.stderr, started.stderr
    run = team.run("costly")
    assert run["status"] == "failed"
    calls = sum(_batches(server).values())  # a batch costs ≈ 0.0036: all 100 would cost ≈ 0.36
    assert calls < 35, calls
    # the limit, plus at most what was in flight when it was crossed (4 processes × 4 calls ≈ 0.06); counted per
    # process, each of the 4 could have spent up to the limit on its own (0.2)
    assert run["cost"] < 0.05 + 0.06, run["cost"]


def _three_processes_worth(redis_url: str, name: str, concurrency: int, rate: int | None,
                           window: float) -> tuple[int, list[float]]:
    """Three callers' worth of five requests each — each its own event loop and limiter, as three workers have —
    holding their turn 0.1 s; returns the most in flight at once and when each began."""
    import threading

    from runner.shared_limits import SharedLimiter

    in_flight, most, starts = 0, 0, []
    lock = threading.Lock()

    async def caller(limiter: SharedLimiter) -> None:
        nonlocal in_flight, most
        async with limiter:
            with lock:
                in_flight += 1
                most = max(most, in_flight)
                starts.append(time.monotonic())
            await asyncio.sleep(0.1)
            with lock:
                in_flight -= 1

    def worker() -> None:
        limiter = SharedLimiter(redis_url, name, concurrency, rate=rate, window=window)

        async def five() -> None:
            await asyncio.wait_for(asyncio.gather(*(caller(limiter) for _ in range(5))), 60)
        asyncio.run(five())

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(starts) == 15
    return most, sorted(starts)


def _send_times_in_redis(redis_url: str, name: str, callers: Callable[[], object]) -> list[float]:
    """When Redis itself granted each send of `name` while `callers` ran: the rate script's ZADD of the send time,
    read from MONITOR. A time taken in the caller after its grant came back could be late by any amount on a
    loaded machine (a thread not scheduled), so only Redis's own record can show two sends too close."""
    import threading

    import redis

    sent: list[float] = []
    stop = f"stop-{uuid.uuid4().hex}"
    client = redis.Redis.from_url(redis_url)
    with client.monitor() as monitor:
        def listen() -> None:
            for command in monitor.listen():
                words = command["command"].split()
                if stop in words:
                    return
                if command["client_type"] == "lua" and words[:2] == ["ZADD", f"playbook:rate:{name}"]:
                    sent.append(float(words[2]))

        listening = threading.Thread(target=listen)
        listening.start()
        try:
            callers()
        finally:
            client.echo(stop)  # the monitor sees this after every command before it, then stops
            listening.join(60)
    assert not listening.is_alive()
    return sorted(sent)


def test_a_web_host_limit_holds_across_processes(redis_url: str) -> None:
    """A host's `per_host` (requests in flight) and `delay` (between requests), counted in Redis."""
    most, _ = _three_processes_worth(redis_url, "host:a.example", 2, None, 60.0)
    assert most == 2  # 15 callers wanted in at once; per process it would have been 2 × 3
    sends = _send_times_in_redis(redis_url, "host:b.example",
                                 lambda: _three_processes_worth(redis_url, "host:b.example", 10, 1, 0.15))
    assert len(sends) == 15
    # one send per 0.15 s; the stored time is rounded to 0.1 ms by Lua's number-to-text conversion
    assert min(later - earlier for earlier, later in itertools.pairwise(sends)) >= 0.1498


def test_the_cli_follows_a_worker_run_and_ctrl_c_leaves_it_running(team: Team, server: FakeLLMServer) -> None:
    import os
    import signal
    import subprocess
    import sys

    write_playbook(team.folder, REVIEWED)
    following = subprocess.Popen([sys.executable, "-m", "runner", "run", "pb.yaml", "--run-id", "f"], cwd=team.folder,
                                 env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while True:  # queued, and no worker yet: the command waits for one
        try:
            if team.run("f")["status"] == "queued":
                break
        except AssertionError:
            pass
        assert time.monotonic() < deadline and following.poll() is None
        time.sleep(0.1)
    time.sleep(1.0)  # the command is following now
    following.send_signal(signal.SIGINT)
    stdout, _ = following.communicate(timeout=30)
    assert following.returncode == 130 and "不再跟随" in stdout and "playbook cancel f" in stdout
    assert team.run("f")["status"] == "queued"  # Ctrl-C stopped the following, not the run

    team.workers.start("w1")
    assert team.wait("f", "waiting")["pending"]["step"] == "review"
    approved = cli("approve", "f", cwd=team.folder)
    assert approved.returncode == 0, approved.stderr
    assert "publish" in approved.stdout and "▶ draft" not in approved.stdout  # only what ran after the approval
    assert "已完成" in approved.stdout


def test_a_broker_that_does_not_answer_is_named_and_strands_nothing(project_dir: Path) -> None:
    from runner.testing.servers import free_port

    write_playbook(project_dir, MAP)
    env = {"PLAYBOOK_BROKER_URL": f"redis://:hunter2@127.0.0.1:{free_port()}/0"}
    refused = cli("run", "pb.yaml", "--run-id", "nobroker", "--detach", cwd=project_dir, env=env)
    assert refused.returncode == 2 and "连不上队列 redis://:***@127.0.0.1" in refused.stderr
    assert "Traceback" not in refused.stderr and "hunter2" not in refused.stderr
    listed = cli("runs", "show", "nobroker", cwd=project_dir, env=env)
    assert "失败" in listed.stdout and "playbook resume nobroker" in listed.stdout  # not left queued forever
    status = cli("status", cwd=project_dir, env=env)
    assert status.returncode == 2 and "连不上队列" in status.stderr and "Traceback" not in status.stderr


def test_resume_sends_again_a_queued_run_whose_message_was_lost(team: Team, server: FakeLLMServer) -> None:
    import redis

    write_playbook(team.folder, REVIEWED)
    assert cli("run", "pb.yaml", "--run-id", "lost", "--detach", cwd=team.folder).returncode == 0
    redis.Redis.from_url(team.broker).flushdb()  # Redis restarted without its data: the message is gone
    team.workers.start("w1")
    team.workers.wait_ready()
    time.sleep(1.0)
    assert team.run("lost")["status"] == "queued"  # nobody knows of it
    resumed = cli("resume", "lost", cwd=team.folder)
    assert resumed.returncode == 3 and "等待审核" in resumed.stdout, resumed.stderr
    again = cli("resume", "lost", cwd=team.folder)  # waiting now: resume says what to do instead
    assert again.returncode == 1 and "playbook approve" in again.stderr


def test_a_join_after_a_switch_and_two_approvals_at_once_on_a_worker(team: Team, server: FakeLLMServer) -> None:
    """The gates (runner/engine/gates.py) on the team server: a worker runs the join once, and two approvals
    waiting side by side are decided one after the other through the queue."""
    write_playbook(team.folder, """
name: team_join
inputs: {kind: {type: string, default: b}}
steps:
  - id: sw
    switch: {cases: [{if: "${{ inputs.kind == 'a' }}", goto: a}], default: b}
  - {id: a, llm: {prompt: 走A}}
  - {id: b, needs: [sw], llm: {prompt: 走B}}
  - {id: join, needs: [a, b], llm: {prompt: "合并 ${{ steps.a.status }} ${{ steps.b.status }}"}}
  - {id: check_a, needs: [join], approval: {title: 审一, show: "${{ steps.join.output }}"}}
  - {id: check_b, needs: [join], approval: {title: 审二, show: "${{ steps.join.output }}"}}
  - {id: publish, needs: [check_a, check_b], llm: {prompt: 发布}}
""")
    team.workers.start("w1", concurrency=2)
    assert cli("run", "pb.yaml", "--run-id", "tj", "--detach", cwd=team.folder).returncode == 0
    team.wait("tj", status="waiting")
    first = cli("approve", "tj", cwd=team.folder)  # the CLI follows the worker until the run stops again
    assert first.returncode == 3 and "等待审核" in first.stdout, first.stdout + first.stderr
    second = cli("approve", "tj", cwd=team.folder)
    assert second.returncode == 0, second.stdout + second.stderr
    team.wait("tj")
    prompts = [r["prompt"] for r in server.requests]
    assert prompts.count("合并 skipped done") == 1 and prompts.count("发布") == 1 and "走A" not in prompts


CARD_PLAYBOOK = """
name: team_card
steps:
  - {id: draft, llm: {prompt: 写草稿}}
  - {id: review, approval: {title: 审草稿, show: "${{ steps.draft.output }}"}}
  - {id: publish, llm: {prompt: 发布}}
"""


def test_a_card_from_one_worker_is_decided_on_another_and_each_message_goes_once(
        team: Team, server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run waits on a worker: exactly one card reaches the chat; that worker is lost; the card's button resumes
    the run on the other worker; exactly one finish notice follows."""
    from starlette.testclient import TestClient

    from runner.server import create_app
    from tests.test_server import FEISHU_KEY, Robot, feishu_post

    with Robot() as chat, (team.folder / "playbook.toml").open("a", encoding="utf-8") as toml:
        toml.write('\n[server]\napproval_channel = "ops"\n\n[server.im.feishu]\nencrypt_key_env = "FEISHU_KEY"\n\n'
                   '[notify.channels.ops]\nplatform = "feishu"\nurl_env = "OPS_WEBHOOK"\n')
        toml.close()
        for name, value in {"OPS_WEBHOOK": chat.url, "FEISHU_KEY": FEISHU_KEY}.items():
            monkeypatch.setenv(name, value)
            team.workers.env[name] = value
        write_playbook(team.folder, CARD_PLAYBOOK)
        team.workers.start("w1")
        assert cli("run", "pb.yaml", "--run-id", "card", "--detach", cwd=team.folder).returncode == 0
        team.wait("card", status="waiting")
        deadline = time.monotonic() + 60
        while not chat.received and time.monotonic() < deadline:
            time.sleep(0.1)
        card = chat.received[0]["body"]["card"]
        team.workers.start("w2")
        team.workers.wait_ready()
        team.workers.kill("w1")  # the worker that sent the card is gone: the decision must go to w2
        approve = card["elements"][1]["actions"][0]["value"]
        app = create_app(load_project(team.folder))
        with TestClient(app, client=("198.51.100.7", 50000), base_url="http://127.0.0.1:8600") as http:
            pressed = feishu_post(http, {"open_id": "ou_9", "action": {"value": approve}})
        assert pressed.status_code == 200, pressed.text
        done = team.wait("card")
        while len(chat.received) < 2 and time.monotonic() < deadline + 60:
            time.sleep(0.1)
        bodies = [json.dumps(m["body"], ensure_ascii=False) for m in chat.received]
        assert len(bodies) == 2 and "审草稿" in bodies[0] and "完成" in bodies[1], bodies
        store = open_store(load_project(team.folder))
        try:
            claimed = store.journal_entries("card", "~once", 0)
        finally:
            store.close()
        assert sorted(claimed) == ["card:review:1", f"notice:done:{done['ended_at']}"]
        assert "run card: done" in (team.folder / "worker-w2.log").read_text(errors="replace")  # resumed on w2
        assert [r["prompt"] for r in server.requests].count("发布") == 1


HOLDER = """
import asyncio, sys
import runner.shared_limits as limits
limits.LEASE, limits.RENEW = 3.0, 0.5

async def hold():
    async with limits.SharedLimiter(sys.argv[1], "model:lease-test", 1):
        print("held", flush=True)
        await asyncio.sleep(3600)

asyncio.run(hold())
"""


def test_a_model_slot_lives_as_long_as_its_holder(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker holding a model-concurrency slot keeps it past its lease by renewing it; killed, it frees the slot
    within one lease — not after five minutes during which every run on that model waits."""
    import signal
    import subprocess
    import sys

    import runner.shared_limits as limits

    monkeypatch.setattr(limits, "LEASE", 3.0)

    async def take_the_slot() -> None:
        async with limits.SharedLimiter(redis_url, "model:lease-test", 1):
            pass

    async def scenario() -> None:
        with pytest.raises(TimeoutError):  # three leases' time: renewed all along, still held
            await asyncio.wait_for(take_the_slot(), 9.0)
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        await asyncio.wait_for(take_the_slot(), 60.0)  # freed within a lease of the kill

    holder = subprocess.Popen([sys.executable, "-c", HOLDER, redis_url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        asyncio.run(scenario())
    finally:
        holder.kill()
        holder.wait()


@contextlib.contextmanager
def _map_under_way(project_dir: Path, server: FakeLLMServer, store_url: str, broker: str,
                   run_id: str) -> Iterator[Team]:
    """A team of one worker on the given store and broker, an 800-item map of it past its first 8 requests."""
    with (project_dir / "playbook.toml").open("a", encoding="utf-8") as toml:
        toml.write(f'\n[store]\nurl = "{store_url}"\n\n[queue]\nbroker = "{broker}"\nmap_chunk = 2000\n')
    workers = WorkerPool(project_dir)
    try:
        write_playbook(project_dir, MAP)
        server.latency = 0.3
        workers.start("w1", concurrency=1)
        assert cli("run", "pb.yaml", "-i", "n=800", "--run-id", run_id, "--detach", cwd=project_dir).returncode == 0
        deadline = time.monotonic() + 120
        while len(server.requests) < 8:
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.05)
        yield Team(project_dir, workers, store_url, broker)
    finally:
        workers.close()


def test_a_redis_restart_mid_run_fails_no_run_and_asks_nothing_twice(project_dir: Path, server: FakeLLMServer,
                                                                       postgres_url: str) -> None:
    """The broker crashes and comes back empty while a worker drives a map: no call fails for it (the model limit
    is held in the worker while Redis is away), and no batch is asked twice."""
    from runner.testing.servers import RedisServer

    with RedisServer() as redis, _map_under_way(project_dir, server, postgres_url, redis.url(0), "rr") as team:
        redis.restart()
        run = team.wait("rr", timeout=240)
        assert run["status"] == "done" and run["outputs"] == {"n": 800}
        assert sorted(_batches(server).values()) == [1] * 40  # every batch asked once
        # (whether a call met Redis away, and so counted in the process, depends on the moment of the restart;
        # tests/test_shared_limits.py checks that fallback itself)


def test_a_postgres_restart_mid_run_leaves_a_run_that_finishes(project_dir: Path, server: FakeLLMServer,
                                                               redis_url: str) -> None:
    """Postgres stops (every connection cut) and starts again while a worker drives a map: the run goes on and
    finishes by itself — never shown failed on the way (statements safe to repeat are sent again; a step that
    met the outage mid-statement hands the run back to the workers instead of failing it) — and no batch answered
    before the outage is asked again."""
    from runner.testing.servers import PostgresServer

    with PostgresServer() as postgres, \
            _map_under_way(project_dir, server, postgres.new_database(), redis_url, "pg") as team:
        postgres.stop()
        stopped_at = time.time()
        time.sleep(2)  # the outage itself: two seconds without a database
        postgres.start()
        deadline = time.monotonic() + 240
        seen = set()
        while (run := team.run("pg"))["status"] != "done":
            seen.add(run["status"])
            assert time.monotonic() < deadline, f"the run stayed {run['status']}: {run['error']}"
            time.sleep(0.2)
        assert run["outputs"] == {"n": 800} and "failed" not in seen, seen
        assert _asked_again(server, stopped_at) == []


def test_a_cancel_on_the_team_stops_a_sub_playbooks_map_and_reads_cancelled_everywhere(
        team: Team, server: FakeLLMServer) -> None:
    """`playbook cancel` of a worker's run whose sub-playbook maps: no new call after the batch in flight, and the
    run — its sub-playbook's too — reads 已取消 in `runs list`, `runs show`, the API and `playbook status`."""
    from tests.test_sub_playbook_runs import CHILD, PARENT

    write_playbook(team.folder, CHILD, "child_map.yaml")
    write_playbook(team.folder, PARENT)
    server.latency = 0.3
    team.workers.start("w1")
    assert cli("run", "pb.yaml", "--run-id", "c", "--detach", cwd=team.folder).returncode == 0
    deadline = time.monotonic() + 120
    while len(server.requests) < 6:
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.05)
    cancelled = cli("cancel", "c", cwd=team.folder)
    assert cancelled.returncode == 0, cancelled.stderr
    asked = len(server.requests)
    assert team.wait("c", "cancelled", timeout=120)["status"] == "cancelled"
    assert len(server.requests) - asked <= 3 and "之后" not in [r["prompt"] for r in server.requests]
    listed = cli("runs", "list", cwd=team.folder).stdout
    assert "已取消" in listed and "已中断" not in listed and "运行中" not in listed, listed
    assert "状态：已取消" in cli("runs", "show", "c", cwd=team.folder).stdout
    status = cli("status", cwd=team.folder).stdout
    assert "已取消 1" in status and "失败" not in status and "运行中" not in status, status
    store = open_store(load_project(team.folder))
    try:
        child = store.get_run("c.sub-1") or {}
    finally:
        store.close()
    assert child["parent"] == "c" and child["status"] == "cancelled", child


def test_a_frozen_worker_loses_its_run_and_asks_nothing_once_let_go(team: Team, server: FakeLLMServer) -> None:
    """The coordinating worker frozen mid-map (SIGSTOP of its process group: alive, its heartbeat stopped too) holds
    the run only until the heartbeat is stale; `playbook resume` then hands it to the other worker, which finishes
    it; the frozen worker, let go, stops at its next check and asks nothing more."""
    import os
    import signal

    with (team.folder / "playbook.toml").open("a", encoding="utf-8") as toml:
        toml.write("heartbeat = 1\n")  # [queue] is the file's last section: stale after 4 s
    write_playbook(team.folder, MAP)
    server.latency = 0.3
    team.workers.start("w1")
    team.workers.wait_ready()
    assert cli("run", "pb.yaml", "-i", "n=800", "--run-id", "fz", "--detach", cwd=team.folder).returncode == 0
    deadline = time.monotonic() + 120
    while len(server.requests) < 6:
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.05)
    frozen = team.workers.processes["w1"].pid
    os.killpg(frozen, signal.SIGSTOP)
    frozen_at = time.time()
    try:
        team.workers.start("w2")
        while (resumed := cli("resume", "fz", cwd=team.folder)).returncode != 0:  # follows the run to its end
            assert "仍在" in resumed.stderr and time.monotonic() < deadline + 60, resumed.stderr
            time.sleep(0.5)
        run = team.wait("fz", timeout=240)
        assert run["outputs"] == {"n": 800}
    finally:
        os.killpg(frozen, signal.SIGCONT)
    asked = len(server.requests)
    log = team.folder / "worker-w1.log"
    while "run fz: moved" not in log.read_text(errors="replace"):  # the woken worker's drive ends, writing nothing
        assert time.monotonic() < deadline + 240, log.read_text(errors="replace")[-2000:]
        time.sleep(0.2)
    assert len(server.requests) - asked <= 2  # at most the calls it had in flight when frozen
    assert team.run("fz")["status"] == "done"
    assert _asked_again(server, frozen_at) == []


def test_an_inline_body_and_template_steps_run_the_same_on_workers(team: Team, server: FakeLLMServer) -> None:
    """The new step kinds through the team server: an inline map body large enough to be split into chunks that
    two workers share (each item's body a child run), template steps before and after it."""
    write_playbook(team.folder, """
name: team_body
inputs: {n: {type: integer, default: 240}}
steps:
  - id: items
    template: "${{ range(inputs.n) | list }}"
  - id: each
    map: ${{ steps.items.output }}
    concurrency: 8
    steps:
      - {id: name, template: "第${{ item }}条"}
      - {id: ask, llm: {prompt: "回答${{ steps.name.output }}"}}
  - id: count
    template: ${{ steps.each.output | length }}
outputs: {count: "${{ steps.count.output }}"}
""")
    team.workers.start("w1", concurrency=2)
    team.workers.start("w2", concurrency=2)
    assert cli("run", "pb.yaml", "--run-id", "tb", "--detach", cwd=team.folder).returncode == 0
    run = team.wait("tb")
    assert run["outputs"] == {"count": 240}
    asked = Counter(r["prompt"] for r in server.requests if r["status"] == 200)
    assert len(asked) == 240 and set(asked.values()) == {1}  # every item's body once, none twice
    started = [e for e in team.events("tb", "map_chunk") if e["status"] == "started"]
    assert len(started) >= 2  # the map was split into chunks (map_chunk = 200), not run by one node


def test_kb_search_runs_the_same_on_workers_and_a_missing_kb_is_refused_before_queueing(team: Team) -> None:
    """Workers read the knowledge base where the project keeps it (each loading it once), a map of searches split
    across them; a run naming a knowledge base that does not exist is refused when handed over, nothing queued."""
    from runner.kb.index import build, kb_root

    docs = team.folder / "docs"
    docs.mkdir()
    (docs / "售后.md").write_text("# 售后\n\n## 退款时效\n\n退货签收后 1-3 个工作日原路退款。\n\n## 发票\n\n"
                                "确认收货后在订单详情页下载电子发票。\n", encoding="utf-8")
    project = load_project(team.folder)
    build(kb_root(project.root, project.settings), "shop", docs)
    write_playbook(team.folder, """
name: team_kb
inputs: {kb: {type: string, default: shop}, n: {type: integer, default: 300}}
steps:
  - id: questions
    template: "${{ (['退款几天到账', '发票在哪下载'] * (inputs.n // 2)) }}"
  - id: find
    map: ${{ steps.questions.output }}
    concurrency: 8
    tool: kb.search
    with: {kb: "${{ inputs.kb }}", query: "${{ item }}", k: 1}
  - id: before
    template: "${{ approval.step }}"
  - id: review
    approval:
      title: 审核依据
      show: {依据: "${{ steps.find.output[0].passages[0].cite }}"}
      sources: ${{ steps.find.output[:2] }}
outputs:
  cites: ${{ steps.find.output | map(attribute='passages') | map('first') | map(attribute='cite') | list }}
  before: ${{ steps.before.output }}
""")
    team.workers.start("w1", concurrency=2)
    team.workers.start("w2", concurrency=2)
    assert cli("run", "pb.yaml", "--run-id", "kb1", "--detach", cwd=team.folder).returncode == 0
    # a worker's approval carries the passages the draft cites, as a local run's does (and reads approval.step)
    pending = team.wait("kb1", "waiting")["pending"]
    assert pending["sources"] == [{"cite": "售后.md › 售后 › 退款时效", "text": "退货签收后 1-3 个工作日原路退款。"},
                                  {"cite": "售后.md › 售后 › 发票", "text": "确认收货后在订单详情页下载电子发票。"}]
    assert cli("approve", "kb1", cwd=team.folder).returncode == 0
    done = team.wait("kb1")
    assert done["outputs"]["before"] is None
    cites = done["outputs"]["cites"]
    assert cites == ["售后.md › 售后 › 退款时效", "售后.md › 售后 › 发票"] * 150
    assert len([e for e in team.events("kb1", "map_chunk") if e["status"] == "started"]) >= 2
    refused = cli("run", "pb.yaml", "-i", "kb=faq", "--run-id", "kb2", "--detach", cwd=team.folder)
    assert refused.returncode == 2 and "知识库 'faq' 不存在" in refused.stderr, refused.stderr
    store = open_store(project)
    try:
        assert store.get_run("kb2") is None
    finally:
        store.close()


def test_run_log_json_logs_a_run_a_worker_drives_as_it_logs_a_local_one(team: Team) -> None:
    """`playbook run --log-json` on a team server follows the worker's run: the same log lines as a local run."""
    write_playbook(team.folder, """
name: logged
steps:
  - {id: draft, llm: {prompt: 写一段总结}}
outputs: {text: "${{ steps.draft.output }}"}
""")
    team.workers.start("w1")
    done = cli("run", "pb.yaml", "--log-json", "--run-id", "j", cwd=team.folder)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert [line["event"] for line in lines] == ["run_start", "llm_call", "step_end", "run_end"]
    assert all(line["run_id"] == "j" and line["playbook"] == "logged" for line in lines)
    assert lines[-1]["status"] == "done" and lines[1]["model"] == "default" and lines[1]["tokens_in"] > 0


def test_a_run_a_worker_drives_exports_the_same_trace_as_a_local_one(team: Team) -> None:
    """`[trace] otlp_endpoint` on a team server: the worker that drives the run exports its spans (the tree a local
    run exports: run → step → LLM call), flushed when the run settles, without the worker stopping."""
    from runner.testing import OtlpReceiver

    with OtlpReceiver() as receiver:
        with (team.folder / "playbook.toml").open("a", encoding="utf-8") as toml:
            toml.write(f'\n[trace]\notlp_endpoint = "{receiver.url}"\nservice_name = "team"\n')
        write_playbook(team.folder, "name: traced\nsteps:\n  - {id: draft, llm: {prompt: 写一段总结}}\n")
        team.workers.start("w1")
        assert cli("run", "pb.yaml", "--run-id", "tr", "--detach", cwd=team.folder).returncode == 0
        team.wait("tr")
        spans = receiver.wait_for(3)
    by_name = {s.name: s for s in spans}
    assert set(by_name) == {"playbook traced", "step draft", "chat default"}, [s.name for s in spans]
    run = by_name["playbook traced"]
    assert run.attributes["playbook.run_id"] == "tr" and run.service == "team"
    assert by_name["step draft"].parent_id == run.span_id
    assert by_name["chat default"].parent_id == by_name["step draft"].span_id
