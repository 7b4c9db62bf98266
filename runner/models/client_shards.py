"""Several SDK clients for one endpoint, each with its own connection pool, a call leasing the least busy one.

Why: httpx's pool walks every connection it holds on each request and each response it closes, and asks each
idle one whether its socket has gone readable (a system call). At 100 calls in flight that walk was the largest
single cost of a call, in the bare SDK as in the engine (benchmarks/bench_llm_path.py). Pools of at most
`PER_CLIENT` calls bound the walk whatever the step's concurrency. A client costs about 30 ms of CPU to make (its
TLS context), so a second one is made only when every client already carries `PER_CLIENT` calls: a step that runs
8 calls at a time keeps one client and one pool, as before."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

PER_CLIENT = 25  # calls in flight per client: at 100 in flight, 16–50 measured alike; one pool of 100 cost 12–20 % more


class ClientShards:
    def __init__(self, make: Callable[[], Any], per_client: int = PER_CLIENT) -> None:
        self._make = make
        self._per_client = per_client
        self._clients: list[Any] = []
        self._busy: list[int] = []

    @contextlib.contextmanager
    def lease(self) -> Iterator[Any]:
        """The least busy client for the length of one call; a new one when every client is full."""
        index = min(range(len(self._busy)), key=self._busy.__getitem__, default=-1)
        if index < 0 or self._busy[index] >= self._per_client:
            self._clients.append(self._make())
            self._busy.append(0)
            index = len(self._clients) - 1
        self._busy[index] += 1
        try:
            yield self._clients[index]
        finally:
            self._busy[index] -= 1

    @property
    def clients(self) -> int:
        return len(self._clients)

    async def aclose(self) -> None:
        """Every client's pool, when the event loop they belong to shuts down (runner/loop_local.py)."""
        for client in self._clients:
            with contextlib.suppress(Exception):
                await client.close()
        self._clients.clear()
        self._busy.clear()
