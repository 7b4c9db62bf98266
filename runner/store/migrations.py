"""The store's schema as numbered migrations, one list for SQLite and Postgres.

A database records the version it is at (`schema_version`); opening it applies every later migration in
one transaction, under a lock (SQLite: BEGIN IMMEDIATE; Postgres: an advisory lock), so two processes
opening an old database at once migrate it once. A database made by a newer version of the runner is
refused with a message, never written to. Migrations only ever add: a new version reads an old database,
and an old version's rows stay valid.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runner.errors import PlaybookError
from runner.i18n import _

# Written for SQLite; `for_postgres` maps the types. Timestamps are REAL (seconds): in Postgres that must be
# DOUBLE PRECISION — its REAL is 4 bytes and would round a timestamp to minutes.
_BASE = [
    """CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, playbook TEXT NOT NULL, path TEXT NOT NULL, source TEXT NOT NULL,
  status TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL, inputs TEXT NOT NULL,
  outputs TEXT, error TEXT, tokens_in INTEGER DEFAULT 0, tokens_out INTEGER DEFAULT 0,
  cost REAL DEFAULT 0, pending TEXT, cancel_requested INTEGER DEFAULT 0, parent TEXT,
  max_cost REAL)""",
    """CREATE TABLE IF NOT EXISTS journal (
  run_id TEXT NOT NULL, step TEXT NOT NULL, visit INTEGER NOT NULL, key TEXT NOT NULL,
  value TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY (run_id, step, visit, key))""",
    "CREATE TABLE IF NOT EXISTS llm_cache (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)",
    """CREATE TABLE IF NOT EXISTS schedules (
  id TEXT PRIMARY KEY, next_due REAL NOT NULL, paused INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS schedule_fires (
  schedule_id TEXT NOT NULL, due REAL NOT NULL, at REAL NOT NULL, action TEXT NOT NULL, run_id TEXT,
  detail TEXT, PRIMARY KEY (schedule_id, due))""",
    """CREATE TABLE IF NOT EXISTS decisions (
  run_id TEXT NOT NULL, step TEXT NOT NULL, visit INTEGER NOT NULL, decision TEXT NOT NULL, at REAL NOT NULL,
  PRIMARY KEY (run_id, step, visit))""",
    """CREATE TABLE IF NOT EXISTS steps (
  run_id TEXT NOT NULL, step TEXT NOT NULL, visit INTEGER NOT NULL, status TEXT NOT NULL, started REAL NOT NULL,
  seconds REAL, llm_calls INTEGER, tokens_in INTEGER, tokens_out INTEGER, cost REAL, done INTEGER,
  total INTEGER, given TEXT, output TEXT, PRIMARY KEY (run_id, step, visit))""",
    """CREATE TABLE IF NOT EXISTS approvals (
  run_id TEXT NOT NULL, step TEXT NOT NULL, visit INTEGER NOT NULL, action TEXT NOT NULL,
  by TEXT NOT NULL, at REAL NOT NULL, comment TEXT, edits TEXT, diff TEXT)""",
]

# The chunks of a distributed map (runner/team/chunks.py): who holds each, when it last said so, whether done.
_CHUNKS = """CREATE TABLE IF NOT EXISTS map_chunks (
  run_id TEXT NOT NULL, step TEXT NOT NULL, visit INTEGER NOT NULL, chunk INTEGER NOT NULL,
  first_item INTEGER NOT NULL, end_item INTEGER NOT NULL, status TEXT NOT NULL, worker TEXT,
  heartbeat REAL, runs INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (run_id, step, visit, chunk))"""

Migration = list[str] | Callable[[Callable[[str], list[tuple[Any, ...]]], bool], None]


def _owner_columns(execute: Callable[[str], list[tuple[Any, ...]]], postgres: bool) -> None:
    """Columns added to `runs` after the first release: its owner process, and the errors it went on past.
    Databases made between then and the first numbered migration may have some of them already."""
    if postgres:
        present = {r[0] for r in execute("SELECT column_name FROM information_schema.columns "
                                         "WHERE table_name = 'runs' AND table_schema = current_schema()")}
    else:
        present = {r[1] for r in execute("PRAGMA table_info(runs)")}
    for column, kind in (("pid", "INTEGER"), ("problems", "TEXT"), ("pid_started", "REAL"),
                         ("host", "TEXT"), ("heartbeat", "REAL")):
        if column not in present:
            execute(f"ALTER TABLE runs ADD COLUMN {column} {_type(kind, postgres)}")


MIGRATIONS: list[Migration] = [_BASE, _owner_columns, [_CHUNKS]]
LATEST = len(MIGRATIONS)


def _type(kind: str, postgres: bool) -> str:
    return {"REAL": "DOUBLE PRECISION", "INTEGER": "BIGINT"}.get(kind, kind) if postgres else kind


def for_postgres(sql: str) -> str:
    return sql.replace(" REAL", " DOUBLE PRECISION").replace(" INTEGER", " BIGINT")


def migrate(execute: Callable[[str], list[tuple[Any, ...]]], *, postgres: bool, where: str) -> int:
    """Bring the schema to LATEST inside the caller's transaction; returns the version it was at."""
    execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    rows = execute("SELECT version FROM schema_version")
    at = int(rows[0][0]) if rows else 0
    if at > LATEST:
        raise PlaybookError(_("the store at {where} was written by a newer version of playbook runner (schema "
                              "{at}; this version knows up to {LATEST}); upgrade playbook runner to use it").format(
                                where=where, at=at, LATEST=LATEST))
    for migration in MIGRATIONS[at:]:
        if callable(migration):
            migration(execute, postgres)
        else:
            for sql in migration:
                execute(for_postgres(sql) if postgres else sql)
    if not rows:
        execute(f"INSERT INTO schema_version VALUES ({LATEST})")
    elif at < LATEST:
        execute(f"UPDATE schema_version SET version = {LATEST}")
    return at
