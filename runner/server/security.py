"""Who may use the server: loopback clients freely; anyone else only with the token. Forms carry a
CSRF token (double-submit cookie) and the API takes only JSON, so another site cannot act for a user."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
TOKEN_COOKIE = "playbook_token"
CSRF_COOKIE = "playbook_csrf"


PROXY_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")


def is_local(request: Request) -> bool:
    """A loopback client that no proxy speaks for: behind nginx every request comes from 127.0.0.1."""
    if any(name in request.headers for name in PROXY_HEADERS):
        return False
    return request.client is not None and request.client.host in LOOPBACK


def _given_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    if not request.url.path.startswith("/api/"):  # the API takes the header only, so no cookie CSRF there
        return request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE, "")
    return ""


def token_gate(token: str | None) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    async def gate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path.startswith("/im/") or is_local(request):
            return await call_next(request)  # IM callbacks prove themselves with the platform's signature
        if not token:
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
