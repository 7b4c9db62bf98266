"""The Postgres store (`[store] url`) against a real throw-away Postgres: the same runs, journal, approvals and
LangGraph checkpoints as SQLite, nothing written to .playbook/state.db; schema migrations both ways."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import psycopg
import pytest

from runner.config import load_project
from runner.errors import PlaybookError
from runner.store import SqliteStore, open_store
from runner.store.migrations import LATEST
from runner.store.postgres import PostgresStore
from runner.testing import FakeLLMServer
from tests.conftest import REVIEWED, cli, write_playbook

pytestmark = pytest.mark.usefixtures("english")  # these tests check what the messages say, in English


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as db:
        return list(db.execute(sql).fetchall())


def test_a_run_with_an_approval_lives_in_postgres_and_resumes_from_its_checkpoint(
        project_dir: Path, server: FakeLLMServer, postgres_url: str) -> None:
    env = {"PLAYBOOK_STORE_URL": postgres_url}
    path = write_playbook(project_dir, REVIEWED)
    started = cli("run", str(path), "--run-id", "pg1", cwd=project_dir, env=env)
    assert started.returncode == 3, started.stderr  # waiting for approval
    approved = cli("approve", "pg1", cwd=project_dir, env=env)
    assert approved.returncode == 0, approved.stderr
    assert _rows(postgres_url, "SELECT status FROM runs WHERE id = 'pg1'") == [("done",)]
    assert _rows(postgres_url, "SELECT action FROM approvals WHERE run_id = 'pg1'") == [("approve",)]
    assert _rows(postgres_url, "SELECT count(*) FROM checkpoints WHERE thread_id = 'pg1'")[0][0] > 0
    assert len(server.prompts("写一段总结")) == 1  # the approve continued from the checkpoint, nothing redone
    assert not (project_dir / ".playbook" / "state.db").exists()
    assert not (project_dir / ".playbook" / "checkpoints.db").exists()
    listed = cli("runs", "list", cwd=project_dir, env=env)
    assert "pg1\treviewed\t" in listed.stdout
    assert (project_dir / ".playbook" / "runs" / "pg1" / "run.json").exists()  # artifacts stay on disk


def test_two_approvals_at_once_apply_one_on_postgres(project_dir: Path, server: FakeLLMServer,
                                                    postgres_url: str) -> None:
    env = {"PLAYBOOK_STORE_URL": postgres_url}
    path = write_playbook(project_dir, REVIEWED)
    assert cli("run", str(path), "--run-id", "twice", cwd=project_dir, env=env).returncode == 3
    import os
    import sys

    both = [subprocess.Popen([sys.executable, "-m", "runner", "approve", "twice"], cwd=project_dir,
                             env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    results = [(p.wait(timeout=300), p.communicate()[1]) for p in both]
    assert sorted(code for code, _ in results) == [0, 1], results
    assert len(server.prompts("下游发布")) == 1
    assert _rows(postgres_url, "SELECT count(*) FROM decisions WHERE run_id = 'twice'") == [(1,)]


def test_the_store_url_must_be_postgres_and_a_dead_server_is_named_without_its_password(
        project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAYBOOK_STORE_URL", "mysql://u:p@h/db")
    with pytest.raises(PlaybookError, match="must start with postgresql://"):
        open_store(load_project())
    from runner.testing.servers import free_port

    monkeypatch.setenv("PLAYBOOK_STORE_URL", f"postgresql://me:hunter2@127.0.0.1:{free_port()}/db")
    with pytest.raises(PlaybookError) as caught:
        open_store(load_project())
    assert "cannot connect to the store at postgresql://me:***@127.0.0.1" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    shown = cli("runs", "list", cwd=project_dir)
    assert shown.returncode == 2 and "cannot connect to the store" in shown.stderr
    assert "Traceback" not in shown.stderr and "hunter2" not in shown.stderr


# the schema before numbered migrations: no schema_version table, runs without its owner columns
_OLD_RUNS = ("CREATE TABLE runs (id TEXT PRIMARY KEY, playbook TEXT NOT NULL, path TEXT NOT NULL, "
             "source TEXT NOT NULL, status TEXT NOT NULL, started_at {real} NOT NULL, ended_at {real}, "
             "inputs TEXT NOT NULL, outputs TEXT, error TEXT, tokens_in INTEGER DEFAULT 0, "
             "tokens_out INTEGER DEFAULT 0, cost {real} DEFAULT 0, pending TEXT, cancel_requested INTEGER "
             "DEFAULT 0, parent TEXT, max_cost {real})")
_OLD_ROW = ("INSERT INTO runs (id, playbook, path, source, status, started_at, inputs) "
            "VALUES ('old', 'p', 'p.yaml', '', 'done', 1.5, '{}')")


def test_a_new_version_upgrades_an_old_sqlite_database_and_keeps_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:
        db.execute(_OLD_RUNS.format(real="REAL"))
        db.execute(_OLD_ROW)
    store = SqliteStore(path)
    run = store.get_run("old")
    assert run is not None and run["status"] == "done" and run["pid"] is None and run["host"] is None
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(LATEST,)]
        assert db.execute("SELECT count(*) FROM map_chunks").fetchone() == (0,)


def test_a_new_version_upgrades_an_old_postgres_database_and_keeps_its_runs(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute(_OLD_RUNS.format(real="DOUBLE PRECISION"))
        db.execute(_OLD_ROW)
    stores = [PostgresStore(postgres_url) for _ in range(3)]  # several processes' first opening at once
    run = stores[0].get_run("old")
    assert run is not None and run["started_at"] == 1.5 and run["pid"] is None
    for store in stores:
        store.close()
    assert _rows(postgres_url, "SELECT version FROM schema_version") == [(LATEST,)]


def test_a_database_from_a_newer_version_is_refused_untouched(tmp_path: Path, postgres_url: str) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute(f"INSERT INTO schema_version VALUES ({LATEST + 1})")
    with pytest.raises(PlaybookError, match="written by a newer version of playbook runner"):
        SqliteStore(path)
    with sqlite3.connect(path) as db:
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["schema_version"]
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute(f"INSERT INTO schema_version VALUES ({LATEST + 1})")
    with pytest.raises(PlaybookError, match=f"schema {LATEST + 1}"):
        PostgresStore(postgres_url)


def test_several_processes_setting_up_the_checkpoint_tables_at_once_do_not_deadlock(
        project_dir: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """LangGraph's setup builds indexes CONCURRENTLY, which waits for every open transaction: a second opener
    that waited for the setup lock inside a statement deadlocked with it (three runs starting at once)."""
    import asyncio
    import threading

    from runner.store import checkpointer, factory

    monkeypatch.setenv("PLAYBOOK_STORE_URL", postgres_url)
    project = load_project()
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    async def open_once() -> None:
        async with checkpointer(project) as saver:
            await saver.aget_tuple({"configurable": {"thread_id": "none"}})

    def opener() -> None:
        start.wait()
        try:
            asyncio.run(asyncio.wait_for(open_once(), 60))
        except BaseException as exc:
            errors.append(exc)

    factory._checkpoints_ready.discard(postgres_url)
    threads = [threading.Thread(target=opener) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _rows(postgres_url, "SELECT count(*) FROM checkpoint_migrations")[0][0] > 0
