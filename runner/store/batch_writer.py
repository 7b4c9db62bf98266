"""Writes a run awaits (journal entries, cached replies), committed many to a transaction.

The writes queued during one turn of the event loop — the replies of a wide map that arrived together —
are committed together at the end of that turn, so a 100-wide map does not pay one commit per reply. The
durability rule is unchanged: `write` returns only after its row is committed.

Why not a writer thread: measured, handing each write to a thread and waking the loop back cost more CPU
per LLM call (4.09 ms against 2.92 ms, `benchmarks/bench_llm_path.py`) than the commits it moved; our
writes are short autocommit transactions in WAL mode, so the loop is held for well under a millisecond.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

_Pending = list[tuple[str, tuple[Any, ...], "asyncio.Future[None] | None"]]
Statements = list[tuple[str, tuple[Any, ...]]]


class BatchWriter:
    def __init__(self, commit: Callable[[Statements], None]) -> None:
        self._commit_all = commit  # runs the statements in one transaction, or raises having written none
        self._pending: dict[asyncio.AbstractEventLoop, _Pending] = {}  # one queue per loop using the store

    async def write(self, sql: str, params: tuple[Any, ...]) -> None:
        """Commit with this turn's batch; returns once committed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._add(sql, params, future)
        await future

    def queue(self, sql: str, params: tuple[Any, ...]) -> None:
        """Commit with this turn's batch, without waiting (usage counters, cached replies: what the journal
        write that follows them in the same turn makes durable together with itself)."""
        self._add(sql, params, None)

    def flush(self) -> None:
        """Commit what the running loop has queued, now (a run ending)."""
        with contextlib.suppress(RuntimeError):  # no running loop: nothing can be queued
            self._flush(asyncio.get_running_loop())

    def _add(self, sql: str, params: tuple[Any, ...], future: asyncio.Future[None] | None) -> None:
        loop = asyncio.get_running_loop()
        queued = self._pending.setdefault(loop, [])
        if not queued:
            loop.call_soon(self._flush, loop)
        queued.append((sql, params, future))

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._pending.pop(loop, [])
        if not batch:
            return
        error = self._commit([(sql, params) for sql, params, _ in batch])
        for _, _, future in batch:
            if future is None or future.done():  # no waiter, or a cancelled one: committed (or not) all the same
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

    def _commit(self, statements: Statements) -> BaseException | None:
        try:
            self._commit_all(statements)
        except Exception as exc:
            return exc
        return None
