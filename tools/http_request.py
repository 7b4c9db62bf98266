"""http.request: call an HTTP API — any method, headers (usually `${{ secrets.X }}`), query, a JSON or
form body — with the same host policy as web.fetch, checked on every redirect hop before it is followed."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urljoin, urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from runner.i18n import _
from runner.registry import ToolArgumentError, ToolContext, tool
from tools.egress import guarded_transport
from tools.http import USER_AGENT, FetchFailed, HttpStatusError, check_url, timed_out, tried, waits

if TYPE_CHECKING:  # httpx loads when a request is made, not when `playbook validate` lists tools
    import httpx

RETRY_STATUSES = (429, 500, 502, 503, 504)
MAX_REDIRECTS = 10
MAX_RETRY_AFTER = 120.0
# credentials that must not follow a redirect to another host
_PRIVATE_HEADERS = ("authorization", "proxy-authorization", "cookie", "x-api-key", "api-key")


class RequestInput(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    url: str = Field(description="http(s) URL")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict,
                                    description="e.g. {Authorization: 'Bearer ${{ secrets.API_KEY }}'}")
    query: dict[str, Any] = Field(default_factory=dict, description="query-string parameters")
    json_body: Any = Field(None, alias="json", description="a JSON body (any value)")
    form: dict[str, Any] | None = Field(None, description="a form body (application/x-www-form-urlencoded)")
    timeout: float | None = Field(None, gt=0, description="seconds per attempt (default: [web] timeout)")
    retries: int | None = Field(None, ge=0, le=10, description="extra attempts on 429 and 5xx, honouring "
                                                               "Retry-After (default: [web] retries − 1)")
    ok_status: list[int] = Field(default_factory=list, description="non-2xx statuses that are answers, not errors "
                                                                   "(e.g. [404] when 'not found' is an answer)")

    @model_validator(mode="after")
    def _one_body(self) -> RequestInput:
        if self.json_body is not None and self.form is not None:
            raise ValueError(_("give either json or form as the body, not both"))
        return self


class RequestOutput(BaseModel):
    status_code: int = Field(description="the HTTP status (`steps.<id>.status` is the step's own status)")
    url: str = Field(description="the final URL, after redirects")
    headers: dict[str, str]
    data: Any = Field(None, description="the body parsed as JSON, when it is JSON")
    text: str = Field(description="the body as text")


@tool("http.request", sends_secrets=True)
async def http_request(args: RequestInput, ctx: ToolContext) -> RequestOutput:
    """Call an HTTP API: method, headers, query, JSON or form body; retries 429/5xx; the JSON answer."""
    web = getattr(ctx.settings, "web", None)
    timeout = args.timeout or (web.timeout if web else 20.0)
    attempts = 1 + (args.retries if args.retries is not None else max(0, (web.retries if web else 3) - 1))
    headers = {"User-Agent": web.user_agent if web and web.user_agent else USER_AGENT, **args.headers}
    import httpx

    silent = 0
    async with httpx.AsyncClient(follow_redirects=False, timeout=waits(timeout),
                                 transport=guarded_transport(ctx)) as client:
        for attempt in range(attempts):
            try:
                response = await _send(client, args, headers, ctx)
            except httpx.TimeoutException as exc:
                failure: tuple[str, str] = (timed_out(exc, timeout), "timeout")
                silent += not isinstance(exc, httpx.ConnectTimeout)
                if silent >= 2:  # an API that takes the request and never answers: two waits, not one per retry
                    break
            except httpx.TransportError as exc:
                failure = (_("cannot connect ({reason})").format(reason=type(exc).__name__), "connection")
            else:
                if response.status_code in RETRY_STATUSES and attempt + 1 < attempts \
                        and response.status_code not in args.ok_status:
                    await asyncio.sleep(_retry_after(response) or min(30.0, 0.5 * 2 ** attempt))
                    continue
                return _answer(args, response)
            if attempt + 1 < attempts:
                await asyncio.sleep(min(30.0, 0.5 * 2 ** attempt))
    raise FetchFailed(args.url, tried(failure[0], attempt + 1), failure[1])


async def _send(client: httpx.AsyncClient, args: RequestInput, headers: dict[str, str],
                ctx: ToolContext) -> httpx.Response:
    """One attempt, following redirects by hand so each hop is checked before anything is sent to it."""
    url, method = args.url, args.method
    body: dict[str, Any] = {"json": args.json_body} if args.json_body is not None else \
        {"data": args.form} if args.form is not None else {}
    params: dict[str, Any] | None = args.query or None
    for _hop in range(MAX_REDIRECTS + 1):
        host = check_url(url, ctx)
        response = await client.request(method, url, headers=headers, params=params, **body)
        location = response.headers.get("location")
        if not response.is_redirect or not location:
            return response
        url, params = urljoin(str(response.url), location), None
        if response.status_code in (301, 302, 303) and method != "GET":
            method, body = "GET", {}  # as browsers do: the body is not sent on
        if (urlsplit(url).hostname or "").lower() != host:
            headers = {k: v for k, v in headers.items() if k.lower() not in _PRIVATE_HEADERS}
    raise ToolArgumentError("url", _("'{url}': more than {MAX_REDIRECTS} redirects").format(
                                       url=args.url, MAX_REDIRECTS=MAX_REDIRECTS))


def _answer(args: RequestInput, response: httpx.Response) -> RequestOutput:
    text = response.text
    if not (200 <= response.status_code < 300 or response.status_code in args.ok_status):
        snippet = " ".join(text.split())[:300]
        error = HttpStatusError(str(response.url), response.status_code, response.reason_phrase)
        if snippet:
            error.args = (f"{error.args[0]}: {snippet}",)
        raise error
    data = None
    if text.strip():
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
    return RequestOutput(status_code=response.status_code, url=str(response.url),
                         headers={k.lower(): v for k, v in response.headers.items()}, data=data, text=text)


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(response.headers.get("retry-after", ""))))
    except ValueError:
        return None
