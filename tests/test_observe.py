"""Watching runs: structured log lines (`run --log-json`, the long-running commands) and Prometheus metrics
(`playbook serve`'s /metrics, a scheduler's), through the real commands, the real server and the fake model."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from runner.config import load_project
from runner.testing import FakeLLMServer
from tests.conftest import API_HEADERS, REVIEWED, SECRET, cli, served_project, wait_status, write_playbook

WRITES = """
name: writes
steps:
  - {id: draft, llm: {prompt: 写一段总结}}
  - {id: save, tool: file.write, with: {path: out.txt, content: "${{ steps.draft.output }}"}}
outputs: {text: "${{ steps.draft.output }}"}
"""


def json_lines(text: str) -> list[dict[str, Any]]:
    """The log lines of a command's stderr (a failure's summary for people is the one other line there)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_run_log_json_writes_one_line_per_event_with_the_fields_a_search_needs(project_dir: Path,
                                                                              server: FakeLLMServer) -> None:
    write_playbook(project_dir, WRITES)
    server.faults.sequence = [429]  # one retry, heard outside the run's hooks
    done = cli("run", "pb.yaml", "--log-json", "--run-id", "r1", cwd=project_dir)
    assert done.returncode == 0, done.stderr
    lines = json_lines(done.stderr)
    assert [line["event"] for line in lines if "run_id" in line] == [
        "run_start", "llm_call", "step_end", "tool_call", "step_end", "run_end"]
    for line in lines:
        assert list(line)[:3] == ["timestamp", "level", "event"] and line["worker"]
    for line in (line for line in lines if "run_id" in line):
        assert line["run_id"] == "r1" and line["playbook"] == "writes"
    call = next(line for line in lines if line["event"] == "llm_call")
    assert call["model"] == "default" and call["tokens_in"] > 0 and call["tokens_out"] > 0 and call["cost"] > 0
    assert call["step"] == "draft" and call["seconds"] > 0 and "prompt" not in call  # prompts stay in events.jsonl
    assert {"event": "retry", "model": "default", "reason": "rate_limited"}.items() <= next(
        line for line in lines if line["event"] == "retry").items()
    assert lines[-1]["status"] == "done" and lines[-1]["cost"] == call["cost"]
    assert "HTTP Request" not in done.stderr  # httpx's line per request is left out
    assert "✓" in done.stdout  # the progress people read is still on stdout

    server.faults.auth_error = True  # the provider's 401 repeats the key it was sent
    failed = cli("run", "pb.yaml", "--log-json", "--run-id", "r2", cwd=project_dir)
    assert failed.returncode != 0 and SECRET not in failed.stderr
    said = [line for line in failed.stderr.splitlines() if line.strip() and not line.startswith("{")]
    assert said and said[0].startswith("× ")  # the summary for people
    end = json_lines(failed.stderr)[-1]
    assert end["event"] == "run_end" and end["level"] == "error" and "***" in end["error"]


def test_every_log_line_is_scrubbed_of_secrets_in_every_form_they_travel_in(tmp_path: Path) -> None:
    """The standard library's lines (Celery's, uvicorn's, a warning) go through the same redaction as the events:
    as written, URL-encoded, JSON-escaped and inside base64."""
    script = f"""
import base64, io, logging, sys
from urllib.parse import quote
from runner.observe import logs
logs.configure(json_lines=True, secrets=[{SECRET!r}], worker="w")
logging.getLogger("celery").warning("GET /x?key=%s failed", quote("{SECRET}/+"))
logging.getLogger("celery").warning("auth: Basic %s", base64.b64encode(b"user:{SECRET}").decode())
import structlog
structlog.get_logger().info("said", detail={{"nested": ["{SECRET}"]}})
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = json_lines(done.stderr)
    assert len(lines) == 3 and SECRET not in done.stderr and SECRET[3:] not in done.stderr
    assert lines[0]["logger"] == "celery" and lines[0]["level"] == "warning" and "***" in lines[0]["event"]
    assert "***" in lines[1]["event"] and lines[2]["detail"] == {"nested": ["***"]}


def test_a_log_level_that_does_not_exist_is_named(project_dir: Path) -> None:
    refused = cli("scheduler", "--log-level", "LOUD", cwd=project_dir)
    assert refused.returncode != 0 and "LOUD" in refused.stderr and "DEBUG, INFO, WARNING, ERROR" in refused.stderr
    assert "Traceback" not in refused.stderr


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics page, by name and labels."""
    page = httpx.get(url, timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(page.text) for sample in family.samples}


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_serve_metrics_count_runs_calls_tokens_retries_and_approvals(project_dir: Path,
                                                                     server: FakeLLMServer) -> None:
    playbooks = project_dir / "playbooks"
    playbooks.mkdir()
    write_playbook(playbooks, WRITES, "writes.yaml")
    write_playbook(playbooks, REVIEWED, "reviewed.yaml")
    with served_project(project_dir) as base:
        before = scrape(f"{base}/metrics")
        server.faults.sequence = [429]
        writes = httpx.post(f"{base}/api/runs", json={"playbook": "writes", "inputs": {}}, headers=API_HEADERS)
        wait_status(base, writes.json()["run_id"], "done")
        reviewed = httpx.post(f"{base}/api/runs", json={"playbook": "reviewed", "inputs": {}}, headers=API_HEADERS)
        waiting_id = reviewed.json()["run_id"]
        wait_status(base, waiting_id, "waiting")
        after = scrape(f"{base}/metrics")

        def grew(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        assert grew("playbook_runs_started_total", playbook="writes") == 1
        assert grew("playbook_runs_ended_total", playbook="writes", status="done") == 1
        assert grew("playbook_runs_ended_total", playbook="reviewed", status="waiting") == 1
        assert grew("playbook_llm_calls_total", model="default", cached="false") == 2
        assert grew("playbook_llm_call_seconds_count", model="default") == 2
        assert grew("playbook_llm_tokens_total", model="default", direction="in") > 0
        assert grew("playbook_llm_tokens_total", model="default", direction="out") > 0
        assert grew("playbook_llm_cost_total", model="default") > 0
        assert grew("playbook_llm_retries_total", model="default", reason="rate_limited") == 1
        assert grew("playbook_step_seconds_count", playbook="writes", step="save", status="done") == 1
        assert grew("playbook_tool_calls_total", tool="file.write") == 1
        assert grew("playbook_approvals_total", playbook="reviewed", action="requested") == 1
        assert value(after, "playbook_runs", status="done") == value(after, "playbook_runs", status="waiting") == 1
        assert value(after, "playbook_approvals_waiting") == 1
        assert 0 <= value(after, "playbook_approval_oldest_wait_seconds") < 600

        decided = httpx.post(f"{base}/api/runs/{waiting_id}/decision", json={"action": "approve"},
                             headers=API_HEADERS)
        assert decided.status_code == 202, decided.text
        wait_status(base, waiting_id, "done")
        last = scrape(f"{base}/metrics")
        assert value(last, "playbook_approvals_total", playbook="reviewed", action="approve") - value(
            before, "playbook_approvals_total", playbook="reviewed", action="approve") == 1
        assert value(last, "playbook_approvals_waiting") == 0 and value(last, "playbook_runs", status="done") == 2


def test_a_scheduler_counts_its_fires_and_how_late_they_started(project_dir: Path) -> None:
    """The scheduler's signals reach the metrics a `playbook scheduler --metrics-port` serves."""
    from runner.assembly import assemble
    from runner.observe.metrics import enable, registry_of
    from runner.schedule.scheduler import Scheduler

    playbooks = project_dir / "playbooks"
    playbooks.mkdir()
    write_playbook(playbooks, WRITES.replace("name: writes", 'name: writes\ntriggers: [{cron: "0 9 * * *"}]'),
                   "writes.yaml")
    registry = registry_of(enable())  # the process's counters: other tests' runs may be in them already
    schedule = "writes#1"  # the first trigger of playbooks/writes.yaml

    def counted() -> tuple[float, float, float]:
        return (registry.get_sample_value("playbook_schedule_fires_total", {"schedule": schedule, "action": "started"})
                or 0, registry.get_sample_value("playbook_schedule_lag_seconds_sum", {"schedule": schedule}) or 0,
                registry.get_sample_value("playbook_runs_ended_total", {"playbook": "writes", "status": "done"}) or 0)

    before = counted()
    runner = assemble(load_project())
    try:
        clock = [time.time()]
        scheduler = Scheduler(load_project(), runner, clock=lambda: clock[0])
        clock[0] = scheduler.state(scheduler.schedules[0])["next_due"] + 42

        async def fire() -> list[Any]:
            fires = await scheduler.tick()
            await scheduler.wait()
            return fires

        assert [f.action for f in asyncio.run(fire())] == ["started"]
    finally:
        runner.close()
    assert scheduler.schedules[0].id == schedule
    assert [now - then for now, then in zip(counted(), before, strict=True)] == [1, 42, 1]


def test_the_readme_and_the_grafana_dashboard_name_the_metrics_there_are() -> None:
    """Every metric the code exports is in the README's table, and the dashboard asks only for those."""
    import re

    from prometheus_client import CollectorRegistry

    from runner.observe.metrics import RunMetrics, StoreState, registry_of

    root = Path(__file__).resolve().parent.parent
    families = {family.name for family in registry_of(RunMetrics(CollectorRegistry())).collect()}
    families |= {"playbook_runs", "playbook_approvals_waiting", "playbook_approval_oldest_wait_seconds",
                 "playbook_queue_depth"}  # StoreState's, read from a store at a scrape
    assert "playbook_queue_depth" in Path(sys.modules[StoreState.__module__].__file__ or "").read_text()
    readme = (root / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| metric | labels | what |"):readme.index("The store's figures come")]
    documented = {re.sub(r"_total$", "", name) for name in re.findall(r"`(playbook_\w+)`", table)}
    assert documented == families
    dashboard = json.loads((root / "deploy" / "grafana-dashboard.json").read_text(encoding="utf-8"))
    asked = {re.sub(r"_(total|bucket|sum|count)$", "", name) for panel in dashboard["panels"]
             for target in panel["targets"] for name in re.findall(r"playbook_\w+", target["expr"])}
    assert asked == families, asked ^ families  # nothing asked that is not there; everything there shown


def test_the_scheduler_command_serves_its_metrics_on_its_own_port(project_dir: Path) -> None:
    """`playbook scheduler --metrics-port` serves /metrics on its own port; a port already taken is named."""
    import signal

    from runner.testing.servers import free_port

    port = free_port()
    scheduler = subprocess.Popen([sys.executable, "-m", "runner", "scheduler", "--metrics-port", str(port)],
                                 cwd=project_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert scheduler.stdout is not None
        line = scheduler.stdout.readline()  # its first words come after the metrics port is listening
        assert line, scheduler.stderr.read() if scheduler.stderr else ""
        page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
        assert "# HELP playbook_schedule_lag_seconds" in page and "# HELP playbook_runs_started_total" in page
        refused = subprocess.run([sys.executable, "-m", "runner", "scheduler", "--metrics-port", str(port)],
                                 cwd=project_dir, capture_output=True, text=True, timeout=120)
        assert refused.returncode != 0 and f"--metrics-port {port}" in refused.stderr
        assert "Traceback" not in refused.stderr
    finally:
        scheduler.send_signal(signal.SIGINT)
        scheduler.wait(60)
