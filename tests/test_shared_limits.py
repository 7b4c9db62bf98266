"""Shared limits when Redis is away (a restart): requests still go, within the same limits counted in this process,
and the log says so once — a run is never failed for it."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from runner.shared_limits import SharedLimiter
from runner.testing.servers import free_port


def _nobody_listening() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


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


def test_a_retry_after_holds_every_worker_on_that_model(redis_url: str) -> None:
    """One worker told to wait (a 429 with Retry-After) holds every worker sending on the same model until then —
    the hold is in Redis, not in the process that got the 429 — and sends go again once it has passed."""
    told = SharedLimiter(redis_url, "model:held", 4, rate=100, window=1.0)
    other = SharedLimiter(redis_url, "model:held", 4, rate=100, window=1.0)  # another worker's view of it

    async def send(limiter: SharedLimiter) -> None:
        async with limiter:
            pass

    async def scenario() -> None:
        await asyncio.wait_for(send(other), 30)  # free before
        await told.hold(600)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(send(other), 2.0)
        await told.hold(0.2)  # a shorter hold never shortens a longer one
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(send(other), 1.0)

    async def after_a_short_hold() -> None:
        short = SharedLimiter(redis_url, "model:briefly", 4)
        await short.hold(0.3)
        await asyncio.wait_for(send(SharedLimiter(redis_url, "model:briefly", 4)), 30)

    asyncio.run(scenario())
    asyncio.run(after_a_short_hold())


def test_a_wait_for_a_slot_ends_when_cancelled_and_takes_nothing_for_nobody(redis_url: str) -> None:
    """redis-py loses a cancel that lands inside a command: a run's wait for a model slot, timed out, went on for
    ever (found by running the suite in parallel). Each cancelled wait now ends at once, and a slot its last command
    took after the cancel is given back."""
    import redis

    holder, waiter = SharedLimiter(redis_url, "model:cancel-test", 1), SharedLimiter(redis_url, "model:cancel-test", 1)

    async def take() -> None:
        async with waiter:
            pass

    async def scenario() -> None:
        async with holder:
            for attempt in range(60):  # cancels at many points of the wait: in a command, between commands
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(take(), 0.02 + (attempt % 7) * 0.013)
        async with waiter:  # the holder gone: the slot is free again, nobody's leftover holds it
            pass

    asyncio.run(asyncio.wait_for(scenario(), 120))  # a lost cancel fails here instead of hanging the suite
    assert redis.Redis.from_url(redis_url).zcard("playbook:slots:model:cancel-test") == 0
