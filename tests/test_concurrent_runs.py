"""Five runs at once in one project folder all finish (no `database is locked`); a store file that is damaged or
stays locked is reported in words."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from runner.errors import StoreUnreachable
from runner.store.sqlite import SqliteStore, connect_wal
from runner.testing import FakeLLMServer
from tests.conftest import ROOT, cli


def test_five_runs_at_once_all_finish(project_dir: Path, server: FakeLLMServer) -> None:
    command = [sys.executable, "-m", "runner", "run", str(ROOT / "playbooks" / "feedback_digest.yaml"),
               "-i", f"comments={ROOT / 'examples' / 'reviews_zh.csv'}", "-i", "review=false", "-i", "limit=1000"]
    runs = [subprocess.Popen(command, cwd=project_dir, env={**os.environ}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(5)]
    results = [(p.wait(timeout=600), p.communicate()[1][-400:]) for p in runs]
    assert [code for code, _ in results] == [0] * 5, results
    with sqlite3.connect(project_dir / ".playbook" / "checkpoints.db") as db:
        per_run = db.execute("SELECT count(*) FROM checkpoints GROUP BY thread_id").fetchall()
    assert len(per_run) == 5 and all(count <= 2 for (count,) in per_run)  # saved when a run stops, not per step


def test_a_new_store_waits_while_another_process_holds_it_in_the_old_journal_mode(tmp_path: Path) -> None:
    """CI's failure: one of five runs started together in a new project died at `PRAGMA journal_mode=WAL` with
    `database is locked` — SQLite refuses that switch at once, without its busy wait, while another connection
    holds the file's write lock in the old journal mode."""
    path = tmp_path / "state.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("CREATE TABLE t(x)")
    other.execute("BEGIN IMMEDIATE")  # the other process's write lock, journal mode still `delete`
    refused_once = threading.Event()
    opened: list[sqlite3.Connection] = []
    opening = threading.Thread(target=lambda: opened.append(connect_wal(path, timeout=600, on_busy=refused_once.set)))
    opening.start()
    while not refused_once.wait(timeout=0.05) and opening.is_alive():
        pass  # until the opening is refused once (it then waits for the lock) or ends without meeting it
    assert refused_once.is_set(), "the switch to WAL was never refused: the reproduction does not hold"
    other.execute("COMMIT")
    opening.join(timeout=600)
    assert opened and opened[0].execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    opened[0].close()
    other.close()


def test_a_store_locked_past_the_wait_is_reported_as_unreachable(tmp_path: Path, english: None) -> None:
    path = tmp_path / "state.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("CREATE TABLE t(x)")
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreUnreachable, match=r"state\.db stayed locked by another process"):
        connect_wal(path, timeout=0)
    other.execute("COMMIT")
    other.close()
    SqliteStore(path).close()  # and once released it opens


@pytest.mark.parametrize("content", [b"", b"\x00\xff" * 3000, b"SQLite format 3\x00" + b"\x07" * 5000])
def test_a_damaged_store_is_named_with_the_way_out(project_dir: Path, content: bytes, english: None) -> None:
    (project_dir / ".playbook").mkdir(exist_ok=True)
    (project_dir / ".playbook" / "state.db").write_bytes(content)
    result = cli("runs", cwd=project_dir)
    if not content:  # an empty file is a new database: SQLite makes it one
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 2, result.stderr
    assert "state.db cannot be read as a run store" in result.stderr and "Move it aside" in result.stderr
    assert "Traceback" not in result.stderr and "DatabaseError" not in result.stderr
