"""A team server under faults and across workers: restarts of Redis and Postgres, a frozen worker, a cancel that
reaches a sub-playbook's map, approvals decided on another worker, and the same run, logs and traces on a
worker as locally. Throw-away Postgres and Redis, `playbook worker` processes, the fake LLM server over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.config import load_project
from runner.store import open_store
from runner.testing import FakeLLMServer
from runner.testing.servers import WorkerPool
from tests.conftest import REVIEWED, cli, write_playbook
from tests.team import MAP, Team, asked_again, batches_asked


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
        assert sorted(batches_asked(server).values()) == [1] * 40  # every batch asked once
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
        assert asked_again(server, stopped_at) == []


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
    assert asked_again(server, frozen_at) == []


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


def test_ctrl_c_during_an_approve_on_the_team_leaves_the_decided_run_to_the_workers(
        team: Team, server: FakeLLMServer) -> None:
    import os
    import signal
    import subprocess
    import sys

    write_playbook(team.folder, REVIEWED)
    team.workers.start("w1")
    assert cli("run", "pb.yaml", "--run-id", "d", "--detach", cwd=team.folder).returncode == 0
    team.wait("d", "waiting")
    team.workers.stop("w1")  # nobody to take the decided run: the command keeps following it
    approving = subprocess.Popen([sys.executable, "-m", "runner", "approve", "d"], cwd=team.folder,
                                 env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while team.run("d")["status"] != "queued":  # decided and handed to the workers
        assert time.monotonic() < deadline and approving.poll() is None, approving.communicate()
        time.sleep(0.05)
    approving.send_signal(signal.SIGINT)  # whether following has begun or not
    stdout, stderr = approving.communicate(timeout=60)
    assert approving.returncode == 130 and "不再跟随" in stdout and "playbook cancel d" in stdout, stdout + stderr
    assert team.run("d")["status"] == "queued"  # the decision stands; the run waits for a worker

    team.workers.start("w2")
    assert team.wait("d", "done")["status"] == "done"
