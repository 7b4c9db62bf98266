"""Journal and cache writes from coroutines: the writes of one loop turn share a commit, and each is
durable when its await returns."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from runner.store import SqliteStore


def test_concurrent_journal_writes_are_committed_when_awaited_and_share_commits(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    commits = 0
    original = store._writer._commit  # counting the writer's transactions, not replacing them

    def counted(statements: list[tuple[str, tuple[object, ...]]]) -> BaseException | None:
        nonlocal commits
        commits += 1
        return original(statements)

    store._writer._commit = counted  # type: ignore[method-assign]

    async def main() -> None:
        async def one(i: int) -> None:
            await asyncio.sleep(0.001 * (i % 7))  # replies arriving over a few turns of the loop
            await store.journal_write("run", "step", 1, f"unit-{i}", {"value": i})
            # durable once awaited: a second connection (another process's view) already sees it
            with sqlite3.connect(tmp_path / "state.db") as other:
                row = other.execute("SELECT value FROM journal WHERE key = ?", (f"unit-{i}",)).fetchone()
            assert row == (f'{{"value": {i}}}',)

        await asyncio.gather(*(one(i) for i in range(300)))

    asyncio.run(main())
    assert store.journal_get("run", "step", 1, "unit-299") == {"value": 299}
    assert commits < 100  # writes queued in one turn of the loop shared its commit
    store.close()


def test_a_write_waits_for_another_process_holding_the_lock_then_commits(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    blocker = sqlite3.connect(tmp_path / "state.db", isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # another run in the same folder, mid-write…
    release = threading.Timer(0.3, blocker.execute, ("COMMIT",))  # …that lets go shortly
    release.start()

    async def main() -> None:
        await store.journal_write("run", "s", 1, "k", {"value": 1})

    asyncio.run(main())
    release.join()
    assert store.journal_get("run", "s", 1, "k") == {"value": 1}
    store.close()


def test_a_failed_write_raises_in_the_caller_and_the_next_one_commits(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")

    async def main() -> None:
        try:
            await store._writer.write("INSERT INTO no_such_table VALUES (?)", (1,))
        except sqlite3.OperationalError as exc:
            assert "no_such_table" in str(exc)
        else:
            raise AssertionError("the failed write returned normally")
        await store.journal_write("run", "s", 1, "after", {"value": 2})

    asyncio.run(main())
    assert store.journal_get("run", "s", 1, "after") == {"value": 2}
    store.close()


def test_queued_usage_and_cache_commit_with_the_journal_entry_of_the_same_turn(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    store.create_run(id="run", playbook="p", path="p.yaml", source="", status="running", started_at=0.0,
                     inputs={})
    commits: list[int] = []
    original = store._writer._commit

    def counted(statements: list[tuple[str, tuple[object, ...]]]) -> BaseException | None:
        commits.append(len(statements))
        return original(statements)

    store._writer._commit = counted  # type: ignore[method-assign]

    async def main() -> None:
        store.queue_cache("key", {"text": "回复"})  # what one LLM reply writes…
        store.queue_usage("run", 120, 30, 0.5)
        await store.journal_write("run", "label", 1, "unit-0", {"value": "回复"})  # …one commit
        store.queue_usage("run", 1, 1, 0.25)
        store.flush()  # a run ending commits what is still queued
        assert commits == [3, 1]

    asyncio.run(main())
    run = store.get_run("run")
    assert run is not None and (run["tokens_in"], run["tokens_out"], run["cost"]) == (121, 31, 0.75)
    assert store.cache_get("key") == {"text": "回复"}
    store.close()
