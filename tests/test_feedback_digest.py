"""The shipped feedback_digest playbook end to end against the fake server, through the real CLI."""

from __future__ import annotations

import csv
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import openpyxl

from runner.testing import FakeLLMServer, Faults
from tests.conftest import ROOT, SECRET, cli, resume, run_playbook

PLAYBOOK = ROOT / "playbooks" / "feedback_digest.yaml"
REVIEWS = ROOT / "examples" / "reviews_zh.csv"


def review_ids() -> list[str]:
    with REVIEWS.open(encoding="utf-8") as fh:
        return [row["id"] for row in csv.DictReader(fh)]


def workbook_ids(run_dir: Path) -> list[str]:
    """The labelled sheet's ids: every review once, except exact or near repeats, which the kept row
    stands for (dup_count); in the file's order."""
    book = openpyxl.load_workbook(run_dir / "feedback_labelled.xlsx", read_only=True)
    assert book.sheetnames == ["标注", "聚类", "回复草稿", "用户需求", "重复"]
    rows = list(book["标注"].iter_rows(values_only=True))
    assert rows[0] == ("编号", "评论", "重复数", "情感", "话题", "好案例")  # headers a person reads
    assert {r[5] for r in rows[1:]} <= {"是", "否"}  # booleans as a report writes them
    requests = list(book["用户需求"].iter_rows(values_only=True))
    assert requests[0] == ("优先级", "需求", "证据")  # no `columns:` header given: the output schema's titles
    assert all(r[3] in ("正面", "中性", "负面") for r in rows[1:])
    assert sum(int(r[2]) for r in rows[1:]) == len(review_ids())
    ids = [str(r[0]) for r in rows[1:]]
    # the reviews read as one are named: every review is kept or listed beside the one kept for it
    folded = list(book["重复"].iter_rows(values_only=True))
    assert folded[0] == ("折叠的编号", "保留的编号", "类型", "相似度", "折叠的评论", "保留的评论")
    assert sorted(ids + [str(r[0]) for r in folded[1:]]) == sorted(review_ids())
    assert all(str(r[1]) in ids and r[2] in ("完全重复", "近似重复") for r in folded[1:])
    order = {rid: i for i, rid in enumerate(review_ids())}
    assert [order[i] for i in ids] == sorted(order[i] for i in ids)
    return ids


UNIQUE = 1998  # text.dedupe on the 2,000 reviews: 1 exact and 1 near repeat
LABEL_BATCHES = 50  # 1,998 unique reviews in batches of 40
CLUSTER_BATCHES = 6  # 30 clusters in batches of 5


def batches_journaled(conn: sqlite3.Connection) -> int:
    try:
        return int(conn.execute("SELECT COUNT(*) FROM journal WHERE key LIKE 'batch:%'").fetchone()[0])
    except sqlite3.OperationalError:  # the run's process has created the file but not its tables yet
        return 0


def run_id_from(output: str) -> str:
    match = re.search(r"playbook approve (\S+)", output)
    assert match, output
    return match.group(1)


def test_full_2000_reviews_pause_then_approve_with_edit(project_dir: Path, server: FakeLLMServer) -> None:
    first = cli("run", str(PLAYBOOK), "-i", f"comments={REVIEWS}", cwd=project_dir)
    assert first.returncode == 3, first.stderr
    assert "‖ 等待审核" in first.stdout and "playbook reject" in first.stdout
    run_id = run_id_from(first.stdout)
    assert len(server.prompts("请标注")) == LABEL_BATCHES  # nothing asked twice
    assert len(server.prompts("一组相似评论")) == CLUSTER_BATCHES
    assert len(server.requests) == LABEL_BATCHES + CLUSTER_BATCHES + 1  # + the themes call

    second = cli("approve", run_id, "--set", "summary=人工改写的总结", "--by", "运营小王", cwd=project_dir)
    assert second.returncode == 0, second.stderr
    run_dir = project_dir / ".playbook" / "runs" / run_id
    assert len(workbook_ids(run_dir)) == UNIQUE
    report = (run_dir / "report.md").read_text(encoding="utf-8")
    assert "人工改写的总结" in report and "共收到 2000 条评论，去重后 1998 条" in report
    shown = cli("runs", "show", run_id, cwd=project_dir)
    assert "通过，审核人 运营小王" in shown.stdout and "改动：summary" in shown.stdout


def test_kill_during_map_then_resume_repeats_no_finished_batch(project_dir: Path,
                                                                server: FakeLLMServer) -> None:
    server.latency = 1.0
    proc = subprocess.Popen([sys.executable, "-m", "runner", "run", str(PLAYBOOK), "-i",
                             f"comments={REVIEWS}", "--run-id", "killed"], cwd=project_dir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = project_dir / ".playbook" / "state.db"
    deadline = time.time() + 120
    journaled = 0
    while time.time() < deadline and journaled < 15:
        time.sleep(0.2)
        if db.exists():
            with sqlite3.connect(db) as conn:
                journaled = batches_journaled(conn)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    sent_before = len(server.prompts("下面共有"))
    with sqlite3.connect(db) as conn:
        journaled = batches_journaled(conn)
    assert 15 <= journaled < LABEL_BATCHES + CLUSTER_BATCHES, "the kill should land in the middle of the maps"

    resumed = cli("resume", "killed", cwd=project_dir)
    assert resumed.returncode == 3, resumed.stderr
    prompts = server.prompts("下面共有")
    repeated = len(prompts) - len(set(prompts))
    # only batches in flight at the kill (sent, reply never journaled) are asked again, once each
    assert repeated == sent_before - journaled
    assert repeated <= 16 and len(set(prompts)) == LABEL_BATCHES + CLUSTER_BATCHES  # two maps of 8 in flight
    assert cli("approve", "killed", cwd=project_dir).returncode == 0
    assert len(workbook_ids(project_dir / ".playbook" / "runs" / "killed")) == UNIQUE


def test_transient_faults_still_label_every_item(project_dir: Path, server: FakeLLMServer) -> None:
    server.faults = Faults(rate_limit=0.15, server_error=0.15, malformed=0.05)
    outcome = run_playbook(PLAYBOOK, {"comments": str(REVIEWS)})
    assert outcome.status == "waiting", outcome.error
    statuses = [r["status"] for r in server.requests]
    assert statuses.count(429) > 3 and statuses.count(500) > 3 and statuses.count("malformed") > 0
    server.faults = Faults()
    done = resume(outcome.run_id, decision={"action": "approve", "by": "t", "at": time.time()})
    assert done.status == "done", done.error
    assert len(workbook_ids(Path(done.run_dir))) == UNIQUE


def test_permanent_401_fails_at_once_naming_model_and_key_variable(project_dir: Path,
                                                                    server: FakeLLMServer) -> None:
    server.faults = Faults(auth_error=True)
    started = time.monotonic()
    done = cli("run", str(PLAYBOOK), "-i", f"comments={REVIEWS}", "-i", "limit=40", cwd=project_dir)
    assert done.returncode == 1
    assert "模型 'default'（openai/fake）拒绝了 API 密钥（401）" in done.stderr
    assert "请把 FAKE_LLM_API_KEY 设为有效的密钥" in done.stderr
    assert len(server.requests) <= 2  # the two batches in parallel, no retries
    assert time.monotonic() - started < 30
    assert "Traceback" not in done.stderr


def test_api_key_never_written_or_printed(project_dir: Path, server: FakeLLMServer) -> None:
    server.faults = Faults(auth_error=True)  # the provider echoes the key in its error message
    failed = cli("run", str(PLAYBOOK), "-i", f"comments={REVIEWS}", "-i", "limit=20", cwd=project_dir)
    server.faults = Faults()
    ok = cli("run", str(PLAYBOOK), "-i", f"comments={REVIEWS}", "-i", "limit=20", cwd=project_dir)
    assert failed.returncode == 1 and ok.returncode == 3
    written = [p for p in (project_dir / ".playbook").rglob("*") if p.is_file()]
    assert any(p.name == "events.jsonl" for p in written) and any(p.name == "run.json" for p in written)
    for path in written:
        if path.suffix in (".jsonl", ".json", ".md"):
            assert SECRET not in path.read_text(encoding="utf-8"), path
    for stream in (failed.stdout, failed.stderr, ok.stdout, ok.stderr):
        assert SECRET not in stream
    assert "***" in failed.stderr  # the echoed key was masked, not dropped silently
