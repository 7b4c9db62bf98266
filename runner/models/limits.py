"""A model's limits — requests in flight and per window, and a hold while the provider asks to wait — in this
process, or across a team server's workers (runner/shared_limits.py) when the project has a broker."""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

from runner.config import ModelConfig
from runner.loop_local import loop_local


class ProcessLimiter:
    """Per-model concurrency and requests-per-minute, in this process."""

    def __init__(self, concurrency: int, rpm: int | None, window: float = 60.0) -> None:
        self.semaphore = asyncio.Semaphore(concurrency)
        self.rpm = rpm
        self.window = window
        self.sent: collections.deque[float] = collections.deque()
        self.held_until = 0.0

    async def hold(self, seconds: float) -> None:
        """Send nothing for `seconds` (the provider's Retry-After)."""
        self.held_until = max(self.held_until, time.monotonic() + seconds)

    async def __aenter__(self) -> None:
        await self.semaphore.acquire()
        while (pause := self.held_until - time.monotonic()) > 0:
            await asyncio.sleep(pause)
        while self.rpm:
            now = time.monotonic()
            while self.sent and now - self.sent[0] >= self.window:
                self.sent.popleft()
            if len(self.sent) < self.rpm:
                break
            await asyncio.sleep(self.window - (now - self.sent[0]) + 0.01)
        self.sent.append(time.monotonic())

    async def __aexit__(self, *exc: object) -> None:
        self.semaphore.release()




def model_limiter(alias: str, config: ModelConfig, shared: str | None) -> Any:
    """The model's limiter: in this process, or across a team server's workers when `shared` (its Redis) is
    given — keyed by what the provider sees (model, endpoint, key variable), not by the alias."""
    def make() -> Any:
        if shared:
            from runner.shared_limits import SharedLimiter

            name = f"model:{config.model}@{config.api_base or ''}#{config.key_env()}"
            return SharedLimiter(shared, name, config.concurrency, config.rpm, config.rpm_window)
        return ProcessLimiter(config.concurrency, config.rpm, config.rpm_window)
    return loop_local("model limiter", alias, make)
