"""Writes a run awaits (journal entries, cached replies) committed by one thread, many to a transaction.

Why: a commit on the event loop holds every other request of a 100-wide map while SQLite writes — and
for up to the busy timeout when another run in the same folder holds the write lock. Here the caller's
coroutine waits, the loop goes on, and the writes that queued up meanwhile share one commit. The
durability rule is unchanged: `write` returns only after its row is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from typing import Any

_Entry = tuple[str, tuple[Any, ...], asyncio.AbstractEventLoop, "asyncio.Future[None]"]
_STOP = None
IDLE_SECONDS = 2.0  # a writer with nothing to do ends; the next write starts another (no thread per idle store)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled; its row is committed (or not) all the same
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class BatchWriter:
    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self._db = db
        self._lock = lock
        self._queue: queue.SimpleQueue[_Entry | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    async def write(self, sql: str, params: tuple[Any, ...]) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put((sql, params, loop, future))
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
                self._thread.start()
        await future

    def stop(self) -> None:
        with self._start_lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(_STOP)
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._start_lock:  # a write queued from here on starts a new thread
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            if first is _STOP:
                return
            batch = [first]
            while True:
                try:
                    entry = self._queue.get_nowait()
                except queue.Empty:
                    break
                if entry is _STOP:
                    self._queue.put(_STOP)  # finish this batch, then stop
                    break
                batch.append(entry)
            error = self._commit([(sql, params) for sql, params, _, _ in batch])
            for _, _, loop, future in batch:
                with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                    loop.call_soon_threadsafe(_settle, future, error)

    def _commit(self, statements: list[tuple[str, tuple[Any, ...]]]) -> BaseException | None:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for sql, params in statements:
                    self._db.execute(sql, params)
                self._db.execute("COMMIT")
            except Exception as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                return exc
        return None
