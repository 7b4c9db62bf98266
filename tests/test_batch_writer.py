"""Journal and cache writes from a coroutine: committed by the store's writer thread, many to a commit,
durable when the await returns, and the event loop free meanwhile."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from runner.store import SqliteStore, batch_writer


def test_concurrent_journal_writes_are_committed_when_awaited_and_share_commits(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    commits = 0
    original = store._writer._commit  # counting the writer's transactions, not replacing them

    def counted(statements: list[tuple[str, tuple[object, ...]]]) -> BaseException | None:
        nonlocal commits
        commits += 1
        time.sleep(0.002)  # a slower disk: writes queue up behind a commit
        return original(statements)

    store._writer._commit = counted  # type: ignore[method-assign]

    async def main() -> None:
        async def one(i: int) -> None:
            await store.journal_write("run", "step", 1, f"unit-{i}", {"value": i})
            # durable once awaited: a second connection (another process's view) already sees it
            with sqlite3.connect(tmp_path / "state.db") as other:
                row = other.execute("SELECT value FROM journal WHERE key = ?", (f"unit-{i}",)).fetchone()
            assert row == (f'{{"value": {i}}}',)

        await asyncio.gather(*(one(i) for i in range(300)))
        await store.cache_write("k", {"text": "好"})

    asyncio.run(main())
    assert store.journal_get("run", "step", 1, "unit-299") == {"value": 299}
    assert store.cache_get("k") == {"text": "好"}
    assert commits < 300  # writes that queued behind a commit shared the next one
    thread = store._writer._thread
    store.close()
    assert thread is not None and not thread.is_alive()


def test_an_idle_writer_thread_ends_and_the_next_write_starts_one(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_writer, "IDLE_SECONDS", 0.1)
    store = SqliteStore(tmp_path / "state.db")

    async def write(key: str) -> None:
        await store.journal_write("run", "s", 1, key, {"value": key})

    asyncio.run(write("first"))
    first = store._writer._thread
    assert first is not None
    first.join(timeout=5)
    assert not first.is_alive() and store._writer._thread is None
    asyncio.run(write("second"))
    assert store.journal_get("run", "s", 1, "second") == {"value": "second"}
    store.close()


def test_the_loop_runs_while_another_process_holds_the_write_lock(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    blocker = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another run in the same folder, mid-write
    ticks = 0

    async def main() -> None:
        nonlocal ticks

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        write = asyncio.create_task(store.journal_write("run", "s", 1, "k", {"value": 1}))
        await asyncio.sleep(0.5)
        assert not write.done()  # waiting for the lock…
        blocker.execute("COMMIT")
        await write  # …and committed once it is free
        task.cancel()

    asyncio.run(main())
    assert ticks >= 30  # the loop kept turning (a write on the loop would have frozen it for 0.5 s)
    assert store.journal_get("run", "s", 1, "k") == {"value": 1}
    store.close()


def test_a_failed_write_raises_in_the_caller(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")

    async def main() -> None:
        try:
            await store._writer.write("INSERT INTO no_such_table VALUES (?)", (1,))
        except sqlite3.OperationalError as exc:
            assert "no_such_table" in str(exc)
        else:
            raise AssertionError("the failed write returned normally")
        await store.journal_write("run", "s", 1, "after", {"value": 2})  # the writer goes on

    asyncio.run(main())
    assert store.journal_get("run", "s", 1, "after") == {"value": 2}
    store.close()
