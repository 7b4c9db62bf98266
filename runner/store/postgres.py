"""The Postgres store, for a team server: the same tables and queries as SQLite (runner/store/sql.py), on a
database every worker, the scheduler and the web server share.

One connection per store, in autocommit mode: each statement commits on its own, as in SQLite, and the
transactions the store needs (a claim, a batch of journal writes) are explicit. Rows a decision or a claim
races on are locked (SELECT … FOR UPDATE), where SQLite holds the whole file.

A connection lost to a Postgres restart is replaced, waiting for the database up to RECONNECT_SECONDS. A connection
only says it is lost when a statement fails on it, so: a statement that is safe to run twice (a read, an upsert, an
update that sets values — `_idempotent`) is sent again on the new connection; one that is not (an increment, a plain
insert, a claim's transaction) is preceded by a check when the connection sat idle, so it is sent on a live one, and
fails only when the database went away while it was in flight — whether it committed is then unknown. A journal
batch is sent again when it failed before its COMMIT went, or when every statement in it is safe to repeat.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from functools import cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from runner.errors import StoreUnreachable
from runner.i18n import _
from runner.store import migrations
from runner.store.batch_writer import BatchWriter, Statements
from runner.store.sql import Execute, SqlStore

_MIGRATION_LOCK = 7_366_091  # pg_advisory_xact_lock key: one process migrates at a time
RECONNECT_SECONDS = 60.0  # how long a store waits for its database to come back before it gives up
IDLE_CHECK = 1.0  # seconds idle after which a connection is checked before a statement that must not be repeated
_INCREMENT = re.compile(r"(\w+) = \1 [+-]")  # `tokens_in = tokens_in + ?`: sent twice, counted twice


def _idempotent(sql: str) -> bool:
    """Whether the statement leaves the same rows when sent twice (its first sending may have committed)."""
    verb = sql.lstrip().split(None, 1)[0].upper()
    if verb == "SELECT":
        return True
    if verb == "UPDATE":
        return not _INCREMENT.search(sql)
    return verb == "INSERT" and "ON CONFLICT" in sql and "DO UPDATE" in sql and not _INCREMENT.search(sql)


@cache
def _translated(sql: str) -> str:
    return sql.replace("?", "%s")  # our SQL has no literal '?' or '%': patterns travel as parameters


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=host))


class PostgresStore(SqlStore):
    def __init__(self, url: str) -> None:
        import psycopg

        self.url = url
        self._lock = threading.RLock()
        self._used = time.monotonic()
        try:
            self._db = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise _unreachable(url, exc) from None
        self._writer = BatchWriter(self._commit_statements)
        with self._transaction() as execute:
            execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
            migrations.migrate(lambda sql: _rows(execute(sql, ())), postgres=True, where=safe_url(url))

    @property
    def location(self) -> str:
        return safe_url(self.url)

    def close(self) -> None:
        self._db.close()

    def _exec(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        with self._lock:
            repeatable = _idempotent(sql)
            self._connected(check=not repeatable)
            try:
                rows = _rows(self._db.execute(_translated(sql), params))
            except psycopg.OperationalError:
                if not (repeatable and self._lost()):
                    raise
                self._connected()
                rows = _rows(self._db.execute(_translated(sql), params))
            self._used = time.monotonic()
            return rows

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Execute]:
        with self._lock:
            self._connected(check=True)
            with self._db.transaction():
                yield lambda sql, params: self._db.execute(_translated(sql), params)
            self._used = time.monotonic()

    def _lost(self) -> bool:
        return bool(self._db.closed or self._db.broken)

    def _connected(self, *, check: bool = False) -> None:
        """A connection that works: the one we have, or a new one once the database is back (a restart). With
        `check`, one idle for a while is asked first — a restart shows on a connection only when it is used."""
        import psycopg

        if check and not self._lost() and time.monotonic() - self._used > IDLE_CHECK:
            with contextlib.suppress(psycopg.OperationalError):
                self._db.execute("SELECT 1")
        if not self._lost():
            return
        deadline = time.monotonic() + RECONNECT_SECONDS
        wait = 0.2
        while True:
            try:
                self._db = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() + wait > deadline:
                    raise _unreachable(self.url, exc, waited=RECONNECT_SECONDS) from None
                time.sleep(wait)
                wait = min(wait * 2, 5.0)

    _FOR_UPDATE = " FOR UPDATE"

    def _lock_run(self, execute: Execute, run_id: str) -> None:
        execute("SELECT id FROM runs WHERE id = ? FOR UPDATE", (run_id,))

    def _commit_statements(self, statements: Statements) -> None:
        """A batch of journal writes in one transaction; sent again on a new connection when the database went
        away before its COMMIT was sent (nothing of it committed) or when it holds only upserts."""
        import psycopg

        committing = False
        try:
            with self._transaction() as execute:
                for sql, params in statements:
                    execute(sql, params)
                committing = True
            return
        except psycopg.OperationalError:
            if not self._lost() or (committing and not all(_idempotent(sql) for sql, _params in statements)):
                raise
        with self._transaction() as execute:
            for sql, params in statements:
                execute(sql, params)


def _unreachable(url: str, exc: Exception, waited: float = 0) -> StoreUnreachable:
    reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    after = _(" for {waited:g} s").format(waited=waited) if waited else ""
    return StoreUnreachable(_("cannot connect to the store at {value}{after} ({value2}); check [store] url in "
                              "playbook.toml (or PLAYBOOK_STORE_URL) and that Postgres is running").format(
                                value=safe_url(url), after=after, value2=reason.rstrip('.')))


def _rows(cursor: Any) -> list[tuple[Any, ...]]:
    return list(cursor.fetchall()) if cursor.description is not None else []
