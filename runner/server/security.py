"""Who may use the server: loopback clients freely, except for the API's writes; anyone else only with the token.
Forms carry a CSRF token (double-submit cookie) and the API takes only JSON, so another site cannot act for a
user."""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def served_hosts(base_url: str | None, bind: str | None, extra: list[str]) -> set[str]:
    names = {*LOOPBACK, *(h.lower() for h in extra)}
    if bind and bind not in ("0.0.0.0", "::"):
        names.add(bind.lower())
    if base_url and urlsplit(base_url).hostname:
        names.add(str(urlsplit(base_url).hostname).lower())
    return names
TOKEN_COOKIE = "playbook_token"
CSRF_COOKIE = "playbook_csrf"


# any header a proxy adds, in any spelling (X-Forwarded-For, X_Forwarded_Host, Via, X-Real-IP, CF-Connecting-IP …)
_PROXY_HEADER = re.compile(r"forwarded|^via$|real[-_]?ip|client[-_]?ip|connecting[-_]?ip|^x[-_]original", re.I)


def request_host(request: Request) -> str:
    """The Host header's name, without port or IPv6 brackets, lower case."""
    host = (request.headers.get("host") or "").strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_local(request: Request) -> bool:
    """A loopback client that no proxy speaks for, addressing this machine by a loopback name. Behind nginx
    every request comes from 127.0.0.1; a DNS-rebinding page comes from 127.0.0.1 with its own Host."""
    if any(_PROXY_HEADER.search(name) for name in request.headers):
        return False
    return request.client is not None and request.client.host in LOOPBACK and request_host(request) in LOOPBACK


def _given_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    if not request.url.path.startswith("/api/"):  # the API takes the header only, so no cookie CSRF there
        return request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE, "")
    return ""


def token_gate(token: str | None, hosts: set[str]) -> Callable[[Request, Callable[[Request], Awaitable[Response]]],
                                                                Awaitable[Response]]:
    """`hosts`: the names this server answers for (loopback, the bound address, base_url's host, [server] hosts)."""

    async def gate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request_host(request) not in hosts:
            return PlainTextResponse(f"421: this server does not answer for host '{request_host(request)}'; add it "
                                     "to [server] hosts (or set [server] base_url) in playbook.toml", status_code=421)
        # the API's writes (start, decide, resume) need the token from this machine too: any local process —
        # a script, a playbook's http.request where [web] allow_private opens loopback — is not thereby the reviewer
        api_write = request.url.path.startswith("/api/") and request.method not in ("GET", "HEAD")
        if request.url.path.startswith("/im/") or (is_local(request) and not api_write):
            return await call_next(request)  # IM callbacks prove themselves with the platform's signature
        if not token:
            if api_write and is_local(request):
                return PlainTextResponse("the API's writes need the token, from this machine too: set [server] "
                                         "token in playbook.toml (or PLAYBOOK_SERVER_TOKEN) and send it as "
                                         "Authorization: Bearer …; the page and the CLI work without one",
                                         status_code=403)
            return PlainTextResponse("this server answers only local requests: set [server] token in "
                                     "playbook.toml (or PLAYBOOK_SERVER_TOKEN) to allow others", status_code=403)
        given = _given_token(request)
        if not given or not hmac.compare_digest(given.encode(), token.encode()):
            return PlainTextResponse("401: a valid token is required (Authorization: Bearer …, or ?token=…)",
                                     status_code=401)
        if request.query_params.get("token"):  # keep it in a cookie, out of the address bar and logs
            response: Response = RedirectResponse(str(request.url.remove_query_params("token")), status_code=303)
            response.set_cookie(TOKEN_COOKIE, given, httponly=True, samesite="strict")
            return response
        return await call_next(request)

    return gate


def csrf_token(request: Request) -> str:
    """The browser's CSRF token: its cookie, or a new one that `with_csrf_cookie` will set."""
    if CSRF_COOKIE in request.cookies:
        return request.cookies[CSRF_COOKIE]
    if not hasattr(request.state, "csrf"):
        request.state.csrf = secrets.token_urlsafe(24)
    token: str = request.state.csrf
    return token


def with_csrf_cookie(request: Request, response: Response) -> Response:
    if CSRF_COOKIE not in request.cookies:
        response.set_cookie(CSRF_COOKIE, csrf_token(request), httponly=True, samesite="strict")
    return response


def same_origin(request: Request) -> bool:
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", request.url.netloc)


def check_form(request: Request, form: Any) -> str | None:
    """Why a form post is refused, or None."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    field = str(form.get("csrf") or "")
    if not same_origin(request):
        return "cross-site form post refused"
    if not cookie or not hmac.compare_digest(cookie.encode(), field.encode()):
        return "form expired or forged (CSRF token mismatch): reload the page and submit again"
    return None


def check_json(request: Request) -> str | None:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return "send application/json"
    if not same_origin(request):
        return "cross-site request refused"
    return None


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` gets 413 — at once when its Content-Length says so, else as
    soon as the bytes received pass it — so an upload never fills the server's memory or disk past the limit."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        received, too_large, answered = 0, False, False

        async def counted() -> Any:
            # past the limit the app is told the client left (its form parsing stops): no exception has to make it
            # back through the middlewares in between, which wrap exceptions of their own
            nonlocal received, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message.get("type") == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: dict[str, Any]) -> None:
            nonlocal answered
            if too_large:
                return  # the app's answer to a body it never got whole is not sent: the 413 is
            answered = answered or message.get("type") == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not too_large:
                raise
        if too_large and not answered:
            await self._refuse(send)

    async def _refuse(self, send: Any) -> None:
        text = (f"413: the request is larger than {self.max_bytes / 1e6:g} MB; raise [server] max_upload_mb in "
                "playbook.toml to take larger files").encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(text)).encode())]})
        await send({"type": "http.response.body", "body": text})
