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
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from runner.errors import PlaybookError, StoreUnreachable
from runner.i18n import _
from runner.store import migrations
from runner.store.batch_writer import BatchWriter, Statements
from runner.store.sql import Execute, SqlStore

WAIT_SECONDS = 30.0


def connect_wal(path: Path, *, timeout: float, on_busy: Callable[[], None] | None = None) -> sqlite3.Connection:
    """A connection to `path` in WAL mode, waiting up to `timeout` seconds for other processes.

    Switching a new file to WAL needs its exclusive lock, and SQLite answers `database is locked` at once,
    without waiting, while another process holds the file's write lock in the old journal mode (five runs
    started together in a new project). So the switch is retried until `timeout`; once the file is in WAL
    (the mode is stored in the file) no lock is needed and the loop ends on its first pass."""
    with reported_as_user_errors(path, timeout):
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=timeout)
        deadline = time.monotonic() + timeout
        pause = 0.005
        while True:
            try:
                if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    db.execute("PRAGMA journal_mode=WAL")
                return db
            except sqlite3.OperationalError as error:
                if not _is_busy(error) or time.monotonic() >= deadline:
                    db.close()
                    raise
            if on_busy is not None:
                on_busy()
            time.sleep(pause)  # another process holds the lock: back off, up to 0.2 s between tries
            pause = min(pause * 2, 0.2)


def _is_busy(error: sqlite3.Error) -> bool:
    return _code(error) in ("SQLITE_BUSY", "SQLITE_LOCKED")


def _code(error: sqlite3.Error) -> str:
    """SQLite's primary result code (`SQLITE_IOERR_WRITE` → `SQLITE_IOERR`)."""
    name = str(getattr(error, "sqlite_errorname", ""))
    return "_".join(name.split("_")[:2])


@contextlib.contextmanager
def reported_as_user_errors(path: Path, waited: float) -> Iterator[None]:
    """The file's own failures (locked too long, damaged, disk full, not writable) said in words, naming the file
    and the way out, instead of a traceback. Errors in our SQL (no such table, a constraint) stay bugs."""
    try:
        yield
    except sqlite3.Error as error:
        code = _code(error)
        if _is_busy(error):
            raise StoreUnreachable(_("{path} stayed locked by another process for {seconds:.0f} s; run the command "
                                     "again when the other one has finished").format(path=path, seconds=waited)
                                   ) from error
        if code in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
            raise PlaybookError(_("{path} cannot be read as a run store ({error}): it is damaged or was overwritten. "
                                  "Move it aside to start a fresh history, or restore it from a backup").format(
                                      path=path, error=error)) from error
        if code in ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM"):
            raise PlaybookError(_("{path}: {error}. Free disk space or fix the folder's permissions, then run the "
                                  "command again").format(path=path, error=error)) from error
        raise


class SqliteStore(SqlStore):
    _STEP_ORDER = "started, rowid"

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = connect_wal(path, timeout=WAIT_SECONDS)
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
        with self._lock, reported_as_user_errors(self.path, WAIT_SECONDS):
            return self._db.execute(sql, params).fetchall()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Execute]:
        with self._lock, reported_as_user_errors(self.path, WAIT_SECONDS):
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
