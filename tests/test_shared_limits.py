"""Shared limits when Redis is away (a restart): requests still go, within the same limits counted in this process,
and the log says so once — a run is never failed for it."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest

from runner.shared_limits import SharedLimiter


def _nobody_listening() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


def test_limits_hold_in_this_process_while_redis_is_away(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="runner.shared_limits")
    limiter = SharedLimiter(_nobody_listening(), "model:away", 2, rate=3, window=0.3)
    in_flight = most = 0
    starts: list[float] = []

    async def call() -> None:
        nonlocal in_flight, most
        async with limiter:
            in_flight += 1
            most = max(most, in_flight)
            starts.append(time.monotonic())
            await asyncio.sleep(0.02)
            in_flight -= 1

    async def eight() -> None:
        await asyncio.wait_for(asyncio.gather(*(call() for _ in range(8))), 60)

    asyncio.run(eight())
    assert len(starts) == 8 and most == 2
    starts.sort()
    assert all(later - earlier >= 0.29 for earlier, later in zip(starts, starts[3:], strict=False))  # 3 per 0.3 s
    said = [r.getMessage() for r in caplog.records if "did not answer" in r.getMessage()]
    assert len(said) == 1 and "limit 'model:away' is counted in this process" in said[0]
