"""The one place that decides which store and which LangGraph checkpointer a project uses.

The executor, the scheduler, the server, the CLI and the evals call `open_store(project)`; nothing else names
a store class. `[store] url` (or PLAYBOOK_STORE_URL) = postgresql://… selects Postgres for everything,
LangGraph's checkpoints included; otherwise SQLite files under the project's state folder.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from runner.config import Project
from runner.errors import PlaybookError, StoreUnreachable
from runner.i18n import _
from runner.store.protocol import Store

_POSTGRES = ("postgresql://", "postgres://")
_checkpoints_ready: set[str] = set()  # Postgres URLs whose checkpoint tables this process has set up


def store_lost(exc: BaseException) -> bool:
    """Whether `exc` says the store could not be reached: psycopg's connection errors, or the store's own error
    once it has waited RECONNECT_SECONDS for a restarted database. Such work is tried again, not failed."""
    if isinstance(exc, StoreUnreachable):
        return True
    return type(exc).__module__.startswith("psycopg") and type(exc).__name__ in ("OperationalError", "PoolTimeout")


def store_url(project: Project) -> str | None:
    url = project.settings.store.url
    if url and not url.startswith(_POSTGRES):
        raise PlaybookError(_("[store] url must start with postgresql:// (got '{name}:…'); leave it out to keep "
                              "runs in SQLite under the project's .playbook folder").format(
                                name=url.split(':', 1)[0]))
    return url


def has_store(project: Project) -> bool:
    """Whether the project has a store yet (a read-only command never creates .playbook/ in a folder without
    runs); a Postgres store always has one."""
    return bool(store_url(project)) or project.db_path.exists()


def store_location(project: Project) -> str:
    """The store's place, for messages: the SQLite file, or the Postgres URL without its password."""
    url = store_url(project)
    if url:
        from runner.store.postgres import safe_url

        return safe_url(url)
    return str(project.db_path)


def open_store(project: Project) -> Store:
    url = store_url(project)
    if url:
        from runner.store.postgres import PostgresStore

        return PostgresStore(url)
    from runner.store.sqlite import SqliteStore

    return SqliteStore(project.db_path)


@contextlib.asynccontextmanager
async def checkpointer(project: Project) -> AsyncIterator[Any]:
    """LangGraph's checkpointer for the project's store: Postgres (langgraph-checkpoint-postgres) beside a
    Postgres store; else SQLite in a file of its own (sharing state.db let the checkpointer's async connection
    and the store's wait on each other's write lock), on a connection that waits for other runs' writes
    instead of failing with `database is locked`."""
    url = store_url(project)
    if url:
        async with _postgres_checkpointer(url) as saver:
            yield saver
        return
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    from runner.store.sqlite import connect_wal

    project.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
    # the file is put in WAL mode (stored in the file) before aiosqlite opens it: see connect_wal
    (await asyncio.to_thread(connect_wal, project.checkpoint_path, timeout=120)).close()
    async with aiosqlite.connect(str(project.checkpoint_path), timeout=120) as sqlite_connection:
        await sqlite_connection.execute("PRAGMA synchronous=NORMAL")
        yield AsyncSqliteSaver(sqlite_connection)


@contextlib.asynccontextmanager
async def _postgres_checkpointer(url: str) -> AsyncIterator[Any]:
    """A pool, not one connection: the pool checks a connection before lending it and replaces one that a Postgres
    restart cut, waiting for the database up to the store's own RECONNECT_SECONDS — so a run whose database
    restarted mid-step still writes its checkpoint when it stops, like the store its journal."""
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    from runner.store.postgres import RECONNECT_SECONDS

    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        url, min_size=1, max_size=4, open=False, timeout=RECONNECT_SECONDS,
        check=AsyncConnectionPool.check_connection,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row})
    await pool.open(wait=True, timeout=RECONNECT_SECONDS)
    try:
        saver = AsyncPostgresSaver(pool)
        if url not in _checkpoints_ready:
            # one process sets up the tables. Try, never wait inside a statement: the setup builds indexes
            # CONCURRENTLY, which waits for every open transaction — a waiting lock call would deadlock it
            async with pool.connection() as connection:
                while not (await (await connection.execute("SELECT pg_try_advisory_lock(7366092)")).fetchone()
                           or {}).get("pg_try_advisory_lock"):
                    await asyncio.sleep(0.05)
                try:
                    await saver.setup()
                finally:
                    await connection.execute("SELECT pg_advisory_unlock(7366092)")
            _checkpoints_ready.add(url)
        yield saver
    finally:
        await pool.close()
