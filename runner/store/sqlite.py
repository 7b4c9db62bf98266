"""The SQLite store (the default): runs index, step journal, LLM response cache, approval decisions.

SQLite by default (`.playbook/state.db`, WAL). LangGraph's checkpoints live beside it in
`.playbook/checkpoints.db`: sharing one file let the checkpointer's async connection and this
synchronous one wait on each other's write lock. Every write commits before the call that made it
returns, except a run's journal, usage, cached-reply and map-progress writes, which commit together at
the end of the event-loop turn that made them (runner/store/batch_writer.py) — a reply's journal entry
and its usage in one transaction, before the step that awaited it goes on: a kill -9 loses nothing a step
counted as done.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runner.store import migrations
from runner.store.batch_writer import BatchWriter, Statements
from runner.store.sql import Execute, SqlStore


class SqliteStore(SqlStore):
    _STEP_ORDER = "started, rowid"

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._writer = BatchWriter(self._commit_statements)
        with self._transaction() as execute:
            migrations.migrate(lambda sql: execute(sql, ()).fetchall(), postgres=False, where=str(path))

    @property
    def location(self) -> str:
        return str(self.path)

    def close(self) -> None:
        self._db.close()

    def _exec(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Execute]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db.execute
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _commit_statements(self, statements: Statements) -> None:
        with self._transaction() as execute:
            for sql, params in statements:
                execute(sql, params)
