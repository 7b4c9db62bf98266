"""Shared HTTP policy for the web and feed tools: http(s) only, host allowlist, per-host concurrency
and politeness delay, retries on transient failures, charset detection that does not trust <meta>."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from runner.i18n import _
from runner.loop_local import loop_local
from runner.registry import ToolArgumentError, ToolContext
from tools.egress import guarded_transport

if TYPE_CHECKING:  # httpx loads when a request is made, not when `playbook validate` lists tools
    import httpx

USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/126.0 Safari/537.36 playbook-runner/0.1")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_-]+)""", re.IGNORECASE)
_ALIASES = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "big5": "big5hkscs"}


class HttpStatusError(ToolArgumentError):
    """A page or API answered with an error status. Carries the status and URL, so a step's
    `on_error` and a later `when:` can tell a 404 from a 503 (`steps.x.error.status`)."""

    about_the_argument = False  # the source's state, not a mistake in the argument

    def __init__(self, url: str, status: int, reason: str = "") -> None:
        self.url, self.status = url, status
        super().__init__("url", _("'{url}' answered HTTP {status}{reason}").format(
                                    url=url, status=status, reason=" " + reason if reason else ""))

    @property
    def details(self) -> dict[str, Any]:
        return {"kind": "http_status", "status": self.status, "url": self.url}


class FetchFailed(ToolArgumentError):
    """No answer at all (timeout, refused connection) after every retry."""

    about_the_argument = False

    def __init__(self, url: str, reason: str, kind: str) -> None:
        self.url, self.kind = url, kind
        super().__init__("url", f"'{url}': {reason}")

    @property
    def details(self) -> dict[str, Any]:
        return {"kind": self.kind, "url": self.url}


@dataclass
class Fetched:
    url: str
    status: int
    content: bytes
    headers: dict[str, str]


class _HostGate:
    """At most `per_host` requests in flight to one host, `delay` seconds apart: in this process, or across a
    team server's workers (`shared`: its Redis), where a limit per process would multiply by the workers."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}

    async def enter(self, host: str, per_host: int, delay: float,
                    shared: str | None = None) -> Callable[[], Awaitable[None]]:
        """Wait for a turn; returns what gives it back."""
        if shared:
            from runner.shared_limits import SharedLimiter

            limiter = SharedLimiter(shared, f"host:{host}", per_host, 1 if delay > 0 else None, delay or 60.0)
            await limiter.__aenter__()
            return lambda: limiter.__aexit__(None, None, None)
        semaphore = loop_local("host turns", host, lambda: asyncio.Semaphore(per_host))
        await semaphore.acquire()
        async with loop_local("host lock", host, asyncio.Lock):
            wait = self.last.get(host, 0.0) + delay - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self.last[host] = time.monotonic()

        async def release() -> None:
            semaphore.release()
        return release


_gate = _HostGate()


def check_url(url: str, ctx: ToolContext) -> str:
    """The host of an allowed http(s) URL; ValueError otherwise. Nothing a page says widens this."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ToolArgumentError("url", _("'{url}' is not an http(s) URL").format(url=url))
    host = parts.hostname.lower()
    allowed = [h.lower() for h in getattr(getattr(ctx.settings, "web", None), "allow_hosts", [])]
    if allowed and not any(host == h or host.endswith("." + h) for h in allowed):
        raise ToolArgumentError("url", _("host '{host}' is not allowed; add it to [web] allow_hosts in "
                                         "playbook.toml (allowed: {joined})").format(
                                           host=host, joined=', '.join(allowed)))
    return host


CONNECT_SECONDS = 5.0  # a host that does not take the connection in this long is down


def waits(limit: float) -> Any:
    """httpx timeouts: `limit` for an answer, a short wait of its own for the connection."""
    import httpx

    return httpx.Timeout(limit, connect=min(limit, CONNECT_SECONDS))


def timed_out(exc: Exception, limit: float) -> str:
    import httpx

    if isinstance(exc, httpx.ConnectTimeout):
        return _("could not connect (waited {seconds:g} s)").format(seconds=min(limit, CONNECT_SECONDS))
    return _("no answer (waited {seconds:g} s)").format(seconds=limit)


async def fetch(url: str, ctx: ToolContext, *, timeout: float | None = None) -> Fetched:
    web = getattr(ctx.settings, "web", None)
    host = check_url(url, ctx)
    per_host, delay = (web.per_host, web.delay) if web else (2, 0.5)
    retries = web.retries if web else 3
    limit = timeout or (web.timeout if web else 20.0)
    headers = {"User-Agent": (web.user_agent if web and web.user_agent else USER_AGENT),
               "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}
    last_error, kind = "", "connection"
    import httpx

    timeouts = waits(limit)
    silent = 0
    for attempt in range(retries):
        shared = getattr(getattr(ctx.settings, "queue", None), "broker", None)
        release = await _gate.enter(host, per_host, delay, shared)
        try:
            async with httpx.AsyncClient(follow_redirects=True, timeout=timeouts, headers=headers,
                                         transport=guarded_transport(ctx)) as client:
                response = await client.get(url)
            for hop in [*response.history, response]:
                check_url(str(hop.url), ctx)  # a redirect may not leave the allowlist
            if response.status_code in (429, 500, 502, 503, 504) and attempt + 1 < retries:
                last_error = f"HTTP {response.status_code}"
                await asyncio.sleep(_retry_after(response) or 0.5 * 2 ** attempt)
                continue
            if response.status_code >= 400:
                raise HttpStatusError(url, response.status_code, response.reason_phrase)
            return Fetched(str(response.url), response.status_code, response.content, dict(response.headers))
        except httpx.TimeoutException as exc:
            last_error, kind = timed_out(exc, limit), "timeout"
            silent += not isinstance(exc, httpx.ConnectTimeout)
            if silent >= 2:  # a host that takes the connection and never answers: two waits, not one per retry
                break
        except httpx.TransportError as exc:
            last_error, kind = _("connection failed ({reason})").format(reason=type(exc).__name__), "connection"
        finally:
            await release()
        await asyncio.sleep(0.5 * 2 ** attempt)
    raise FetchFailed(url, tried(last_error, attempt + 1), kind)


def tried(problem: str, attempts: int) -> str:
    return _("{problem} (tried {count} times)").format(problem=problem, count=attempts)


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return min(30.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


def decode(content: bytes, headers: dict[str, Any] | None = None) -> tuple[str, str]:
    """(text, encoding). Valid UTF-8 wins whatever the page declares (Chinese pages often declare
    gb2312 and are UTF-8, or the reverse); then the declared charset if it decodes cleanly; then a
    statistical guess."""
    declared = []
    content_type = (headers or {}).get("content-type", "")
    if "charset=" in content_type:
        declared.append(content_type.split("charset=")[-1].split(";")[0].strip().strip('"'))
    if match := _META_CHARSET.search(content[:4096]):
        declared.append(match.group(1).decode("ascii", "ignore"))
    try:
        return content.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    for name in declared:
        codec = _ALIASES.get(name.lower(), name.lower())
        try:
            return content.decode(codec), codec
        except (UnicodeDecodeError, LookupError):
            continue
    from charset_normalizer import from_bytes

    best = from_bytes(content).best()
    if best is None:
        return content.decode("utf-8", errors="replace"), "utf-8 (with replacements)"
    return str(best), best.encoding
