"""Limits that hold across every process of a team server: a model's concurrency and requests per minute,
a web host's requests in flight. A provider's 60 RPM must stay 60, not 60 × workers.

Both live in Redis (the team server's broker) as sorted sets changed by one Lua script each, so a check and
its claim are one atomic step whichever worker makes them, and time is Redis's own clock (no skew between
machines):
- concurrency: a set of leases scored by their expiry; a slot is free when fewer unexpired leases exist than
  the limit. The holder renews its lease every RENEW seconds while the request runs, so a lease lives as long as
  its process: one killed holding it (kill -9, a lost machine) frees the slot within LEASE seconds, instead of
  every run on that model waiting out a fixed five minutes.
- rate: a set of send times; a request may go when fewer than `limit` were sent in the last `window` seconds,
  otherwise the script says how long until the oldest leaves the window.
- hold: when the provider answers 429 (or 503) with Retry-After, whichever worker got it sets a key that expires
  then, and no worker sends on that model until it has: one refusal slows the whole team, not one request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from runner.loop_local import loop_local

LEASE = 15.0  # seconds a concurrency slot outlives its holder's last renewal
RENEW = LEASE / 3  # a holder renews this often: two renewals may be missed (a busy event loop) before it lapses

_RENEW_LEASE = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 2))
return 1
"""

_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
  redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3]) * 2))
  return 1
end
return 0
"""

_GATE = """
local held = redis.call('PTTL', KEYS[2])
if held > 0 then
  return tostring(held / 1000)
end
if tonumber(ARGV[1]) <= 0 then
  return '0'
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('EXPIRE', KEYS[1], math.ceil(window * 2))
  return '0'
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tostring(tonumber(oldest[2]) + window - now)
"""

_HOLD = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 1
"""

AWAY_SECONDS = 5.0  # after Redis failed to answer, this process counts locally this long before asking again
_away_until: dict[str, float] = {}  # url → when to try Redis again
_giving_back: set[asyncio.Task[None]] = set()  # slots a cancelled wait took after its cancel, being released
log = logging.getLogger("runner.shared_limits")


def _client(url: str) -> Any:
    """One asyncio Redis client per URL and event loop (a client is bound to the loop it was made on); bounded
    waits, so a Redis that went away is noticed in seconds, not hung on."""
    import redis.asyncio

    return loop_local("redis", url, lambda: redis.asyncio.Redis.from_url(url, socket_connect_timeout=2,
                                                                           socket_timeout=5))


async def _command(command: Awaitable[Any], taken: Callable[[Any], None] | None = None) -> Any:
    """A Redis command that a cancel does not interrupt: redis-py swallows a CancelledError that lands inside a
    command (the command returns, the cancel is lost), so a run waiting for a slot, timed out or cancelled, waited
    on for ever. The command runs to its end on its own; the cancel is raised here at once. `taken(result)` is
    called if the cancel came first and the command then answered (a slot taken for nobody: given back)."""
    running = asyncio.ensure_future(command)
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        if taken is not None:
            def settle(done: asyncio.Future[Any]) -> None:
                if not done.cancelled() and done.exception() is None:
                    taken(done.result())
            running.add_done_callback(settle)
        else:
            running.add_done_callback(lambda done: done.cancelled() or done.exception())  # retrieved: no warning
        raise


class _LocalLimit:
    """What one process holds to while Redis is away: the same concurrency and rate, counted here only (a team of
    N workers may then send up to N times the rate, until Redis answers again)."""

    def __init__(self, concurrency: int, rate: int | None, window: float) -> None:
        self.slots = asyncio.Semaphore(concurrency)
        self.rate, self.window = rate, window
        self.sent: deque[float] = deque()
        self.held_until = 0.0

    async def __aenter__(self) -> None:
        await self.slots.acquire()
        loop = asyncio.get_running_loop()
        while (pause := self.held_until - loop.time()) > 0:
            await asyncio.sleep(pause)
        while self.rate:
            now = loop.time()
            while self.sent and self.sent[0] <= now - self.window:
                self.sent.popleft()
            if len(self.sent) < self.rate:
                self.sent.append(now)
                break
            await asyncio.sleep(self.sent[0] + self.window - now)

    async def __aexit__(self, *exc: object) -> None:
        self.slots.release()


class SharedLimiter:
    """`async with limiter:` — one request, within `concurrency` in flight and `rate` per `window` seconds
    across every process that uses the same Redis and name. While Redis does not answer (a restart), the limits
    are held in this process instead — said once in the log — and a request is never failed for it."""

    def __init__(self, url: str, name: str, concurrency: int, rate: int | None = None,
                 window: float = 60.0) -> None:
        self.url = url
        self.name = name
        self.slots_key = f"playbook:slots:{name}"
        self.rate_key = f"playbook:rate:{name}"
        self.hold_key = f"playbook:hold:{name}"
        self.concurrency = concurrency
        self.rate = rate
        self.window = window
        self._held: dict[asyncio.Task[Any] | None, list[str | _LocalLimit]] = {}  # per task: its entries, in order
        self._locals: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LocalLimit] = \
            weakref.WeakKeyDictionary()  # per event loop (a semaphore belongs to one)
        self._renewals: dict[str, asyncio.Task[None]] = {}

    async def __aenter__(self) -> None:
        from redis.exceptions import RedisError

        task, loop = asyncio.current_task(), asyncio.get_running_loop()
        held = self._held.setdefault(task, [])
        try:
            if loop.time() >= _away_until.get(self.url, 0.0):
                try:
                    held.append(await self._take_shared())
                    return
                except RedisError as exc:
                    self._redis_away(exc)
            local = self._locals.setdefault(loop, _LocalLimit(self.concurrency, self.rate, self.window))
            await local.__aenter__()
            held.append(local)
        finally:
            if not held:
                self._held.pop(task, None)  # nothing taken (cancelled while waiting)

    async def __aexit__(self, *exc: object) -> None:
        task = asyncio.current_task()
        entry = self._held[task].pop()
        if not self._held[task]:
            del self._held[task]
        if isinstance(entry, _LocalLimit):
            await entry.__aexit__()
        else:
            await self._release(entry)

    async def hold(self, seconds: float) -> None:
        """Nobody sends on this limit for `seconds` (the provider's Retry-After): every worker, or — Redis away —
        this process."""
        from redis.exceptions import RedisError

        local = self._locals.setdefault(asyncio.get_running_loop(),
                                        _LocalLimit(self.concurrency, self.rate, self.window))
        local.held_until = max(local.held_until, asyncio.get_running_loop().time() + seconds)
        with contextlib.suppress(RedisError):
            await _command(_client(self.url).eval(_HOLD, 1, self.hold_key, max(1, int(seconds * 1000))))

    def _redis_away(self, exc: Exception) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() >= _away_until.get(self.url, 0.0):
            log.warning("Redis at %s did not answer (%s): limit '%s' is counted in this process until it does",
                        self.url.split("@")[-1], type(exc).__name__, self.name)
        _away_until[self.url] = loop.time() + AWAY_SECONDS

    async def _take_shared(self) -> str:
        client = _client(self.url)
        token = uuid.uuid4().hex
        wait = 0.01

        def give_back(took: Any) -> None:
            if took:  # (the task kept until done: the loop holds only a weak reference to it)
                _giving_back.add(task := asyncio.get_running_loop().create_task(self._release(token)))
                task.add_done_callback(_giving_back.discard)

        while not await _command(client.eval(_SLOT, 1, self.slots_key, self.concurrency, token, LEASE), give_back):
            await asyncio.sleep(wait * (0.5 + random.random()))  # jitter: waiters on many workers do not align
            wait = min(wait * 2, 0.2)
        self._renewals[token] = asyncio.get_running_loop().create_task(self._renew(client, token))
        try:  # the hold and the rate checked last, just before the request goes
            while (pause := float(await _command(client.eval(_GATE, 2, self.rate_key, self.hold_key,
                                                             self.rate or 0, self.window, token)))) > 0:
                await asyncio.sleep(pause + 0.005 * random.random())
        except BaseException:
            await self._release(token)
            raise
        return token

    async def _renew(self, client: Any, token: str) -> None:
        """Keep the lease alive while this process holds it; a Redis hiccup is retried at the next turn."""
        while True:
            await asyncio.sleep(RENEW)
            try:
                if not await _command(client.eval(_RENEW_LEASE, 1, self.slots_key, token, LEASE)):
                    return  # released (or lapsed while Redis was away: the slot is counted again from scratch)
            except Exception:  # the broker briefly away: the lease holds LEASE seconds, try again next turn
                continue

    async def _release(self, token: str) -> None:
        renewal = self._renewals.pop(token, None)
        if renewal is not None:
            renewal.cancel()
        with contextlib.suppress(Exception):  # Redis away: the lease lapses by itself within LEASE seconds
            await _command(_client(self.url).zrem(self.slots_key, token))
