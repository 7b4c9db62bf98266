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
"""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

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

_RATE = """
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

_clients: dict[tuple[str, int], Any] = {}


def _client(url: str) -> Any:
    """One asyncio Redis client per URL and event loop (a client is bound to the loop it was made on)."""
    import redis.asyncio

    key = (url, id(asyncio.get_running_loop()))
    if key not in _clients:
        _clients[key] = redis.asyncio.Redis.from_url(url)
    return _clients[key]


class SharedLimiter:
    """`async with limiter:` — one request, within `concurrency` in flight and `rate` per `window` seconds
    across every process that uses the same Redis and name."""

    def __init__(self, url: str, name: str, concurrency: int, rate: int | None = None,
                 window: float = 60.0) -> None:
        self.url = url
        self.slots_key = f"playbook:slots:{name}"
        self.rate_key = f"playbook:rate:{name}"
        self.concurrency = concurrency
        self.rate = rate
        self.window = window
        self._tokens: list[str] = []
        self._renewals: dict[str, asyncio.Task[None]] = {}

    async def __aenter__(self) -> None:
        client = _client(self.url)
        token = uuid.uuid4().hex
        wait = 0.01
        while not await client.eval(_SLOT, 1, self.slots_key, self.concurrency, token, LEASE):
            await asyncio.sleep(wait * (0.5 + random.random()))  # jitter: waiters on many workers do not align
            wait = min(wait * 2, 0.2)
        self._tokens.append(token)
        self._renewals[token] = asyncio.get_running_loop().create_task(self._renew(client, token))
        try:
            while self.rate:
                pause = float(await client.eval(_RATE, 1, self.rate_key, self.rate, self.window, token))
                if pause <= 0:
                    break
                await asyncio.sleep(pause + 0.005 * random.random())
        except BaseException:
            await self._release(token)
            raise

    async def __aexit__(self, *exc: object) -> None:
        await self._release(self._tokens.pop())

    async def _renew(self, client: Any, token: str) -> None:
        """Keep the lease alive while this process holds it; a Redis hiccup is retried at the next turn."""
        while True:
            await asyncio.sleep(RENEW)
            try:
                if not await client.eval(_RENEW_LEASE, 1, self.slots_key, token, LEASE):
                    return  # released (or lapsed while Redis was away: the slot is counted again from scratch)
            except Exception:  # the broker briefly away: the lease holds LEASE seconds, try again next turn
                continue

    async def _release(self, token: str) -> None:
        if token in self._tokens:
            self._tokens.remove(token)
        renewal = self._renewals.pop(token, None)
        if renewal is not None:
            renewal.cancel()
        await _client(self.url).zrem(self.slots_key, token)
