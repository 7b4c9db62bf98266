"""web.scrape: pages rendered by JavaScript, through playwright and the system Chromium.

One browser per run (per event loop), shared by every item of a map and every step; closed when the
run ends. Waits for selectors, scrolls, clicks "load more", extracts fields into rows, screenshots."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from runner import atomic
from runner.i18n import _
from runner.registry import ToolArgumentError, ToolContext, on_run_end, tool
from tools.egress import EgressPolicy, EgressRefused
from tools.http import HttpStatusError, check_url

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class _Browser:
    def __init__(self) -> None:
        self.playwright: Any = None
        self.browser: Any = None
        self.loop: Any = None
        self.launches = 0
        self.lock: asyncio.Lock | None = None

    async def get(self) -> Any:
        loop = asyncio.get_running_loop()
        if self.loop is not loop:
            self.lock, self.loop, self.browser, self.playwright = asyncio.Lock(), loop, None, None
        assert self.lock is not None
        async with self.lock:
            if self.browser is None or not self.browser.is_connected():
                from playwright.async_api import async_playwright

                executable = CHROMIUM if Path(CHROMIUM).exists() else None
                self.playwright = await async_playwright().start()
                try:
                    self.browser = await self.playwright.chromium.launch(
                        executable_path=executable, headless=True, args=CHROMIUM_ARGS)
                except Exception as exc:
                    raise ValueError(_("cannot start Chromium ({reason}); install Debian's chromium package "
                                       "(apt-get install chromium)").format(reason=exc.__class__.__name__)) from None
                self.launches += 1
        return self.browser

    async def close(self) -> None:
        if self.loop is asyncio.get_running_loop() and self.browser is not None:
            await self.browser.close()
            await self.playwright.stop()
        self.browser = self.playwright = None


BROWSER = _Browser()
on_run_end(BROWSER.close)


class ScrapeInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str
    wait_for: str | None = Field(None, description="CSS selector to wait for before reading")
    scroll: int = Field(0, ge=0, le=100, description="scroll to the bottom this many times")
    click_more: str | None = Field(None, description="selector of a 'load more' button, clicked until gone")
    max_clicks: int = Field(50, ge=0, le=1000)
    items: str | None = Field(None, description="selector of each row's element")
    fields: dict[str, str] = Field(default_factory=dict, description="field → selector inside the item; "
                                   "'a@href' reads an attribute, '' the item's own text")
    screenshot: str | None = Field(None, description="PNG file name in the run folder")
    login: str | None = Field(None, description="site name of a login state saved by web.login")
    storage_state: str | None = Field(None, description="a playwright storage-state JSON file to load")
    timeout: float = Field(30.0, gt=0, description="seconds for navigation and waits")


class ScrapeOutput(BaseModel):
    url: str
    title: str
    rows: list[dict[str, Any]]
    count: int
    clicks: int
    screenshot: str | None = None


async def _read(element: Any, selector: str) -> Any:
    css, _at, attribute = selector.partition("@")
    target = element if not css else await element.query_selector(css)
    if target is None:
        return None
    if attribute:
        value = await target.get_attribute(attribute)
        if attribute in ("href", "src") and value:
            value = await target.evaluate(f"e => e.{attribute}")  # absolute, as the browser resolved it
        return value
    return " ".join((await target.inner_text()).split())


@tool("web.scrape")
async def web_scrape(args: ScrapeInput, ctx: ToolContext) -> ScrapeOutput:
    """Scrape a JavaScript-rendered page with the system Chromium into rows."""
    check_url(args.url, ctx)
    browser = await BROWSER.get()
    context = await _new_context(browser, _saved_state(args, ctx), ctx)
    page = await context.new_page()
    page.set_default_timeout(args.timeout * 1000)
    try:
        await _check_selectors(page, args)
        response = await page.goto(args.url, wait_until="domcontentloaded")
        if response is not None and response.status >= 400:
            raise HttpStatusError(args.url, response.status)
        clicks = await _interact(page, args)
        rows = await _extract(page, args)
        shot = None
        if args.screenshot:
            shot = str(ctx.artifact_path(args.screenshot))
            atomic.write_bytes(Path(shot), await page.screenshot(full_page=True, type="png"))
        return ScrapeOutput(url=page.url, title=await page.title(), rows=rows, count=len(rows), clicks=clicks,
                            screenshot=shot)
    except Exception as exc:
        raise _explain(exc, args.timeout) from None
    finally:
        await context.close()


def login_state_path(site: str, ctx: ToolContext) -> Path:
    """Where web.login keeps a site's login state: `<state dir>/auth/<site>.json`, outside any run
    folder so later runs reuse it, and named by a plain site name so no argument can pick the path."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", site) or site.startswith("."):
        raise ToolArgumentError("login", _("site name '{site}' may use only letters, digits, '_', '-' and '.'").format(
                                             site=site))
    return ctx.state_db.parent / "auth" / f"{site}.json"


def _saved_state(args: ScrapeInput, ctx: ToolContext) -> str | None:
    if args.login:
        path = login_state_path(args.login, ctx)
        if not path.exists():
            raise ToolArgumentError("login", _("no login state saved for '{login}'; run a web.login step with "
                                               "site: {login} first").format(login=args.login))
        return str(path)
    if args.storage_state:
        found = ctx.input_path(args.storage_state)
        if not found.exists():
            raise ToolArgumentError("storage_state", _("file '{storage_state}' not found").format(
                                                         storage_state=args.storage_state))
        return str(found)
    return None


async def _new_context(browser: Any, state: str | None, ctx: ToolContext) -> Any:
    context = await browser.new_context(storage_state=state, locale="zh-CN")
    allowed = getattr(getattr(ctx.settings, "web", None), "allow_hosts", [])
    policy = EgressPolicy.of(ctx)

    async def guard(route: Any) -> None:
        """Every request the page makes (redirects, frames, scripts, images) stays inside the allowlist and off
        private addresses. The browser resolves names itself, so this checks the name's addresses just before it
        connects, not the connection itself as the httpx tools do."""
        parts = urlsplit(route.request.url)
        if parts.scheme in ("data", "blob", "about"):
            await route.continue_()
            return
        host = parts.hostname or ""
        ok = not allowed or any(host == h or host.endswith("." + h) for h in allowed)
        if ok and parts.scheme in ("http", "https", "ws", "wss"):
            try:
                await policy.vetted(host, parts.port or (443 if parts.scheme in ("https", "wss") else 80))
            except (EgressRefused, OSError):
                ok = False
        await (route.continue_() if ok else route.abort("blockedbyclient"))

    await context.route("**/*", guard)
    return context


class LoginInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site: str = Field(description="name to save the login under; web.scrape reads it with login: <site>")
    url: str = Field(description="the login page")
    fill: dict[str, str] = Field(default_factory=dict, description="selector → text to type, e.g. "
                                 "{'#user': '${{ secrets.SITE_USER }}'}")
    submit: str | None = Field(None, description="selector of the button to click after filling")
    success: str = Field(description="selector that appears only once logged in")
    timeout: float = Field(30.0, gt=0, description="seconds for navigation and the success selector")


class LoginOutput(BaseModel):
    site: str
    url: str
    cookies: int


@tool("web.login", sends_secrets=True)
async def web_login(args: LoginInput, ctx: ToolContext) -> LoginOutput:
    """Log in to a site with a scripted form and save its login state for later web.scrape steps."""
    check_url(args.url, ctx)
    target = login_state_path(args.site, ctx)
    browser = await BROWSER.get()
    context = await _new_context(browser, None, ctx)
    page = await context.new_page()
    page.set_default_timeout(args.timeout * 1000)
    try:
        named = [(f"fill.{s}", s) for s in args.fill] + [("submit", args.submit), ("success", args.success)]
        await _try_selectors(page, named)
        response = await page.goto(args.url, wait_until="domcontentloaded")
        if response is not None and response.status >= 400:
            raise HttpStatusError(args.url, response.status)
        for selector, text in args.fill.items():
            await page.fill(selector, text)
        if args.submit:
            await page.click(args.submit)
        try:
            await page.wait_for_selector(args.success)
        except Exception:
            raise ToolArgumentError("success", _("'{success}' did not appear within {timeout:g}s; the login failed "
                                                 "or the selector is wrong").format(
                                                   success=args.success, timeout=args.timeout)) from None
        target.parent.mkdir(parents=True, exist_ok=True)
        state = await context.storage_state(path=str(target))
        return LoginOutput(site=args.site, url=page.url, cookies=len(state.get("cookies", [])))
    except Exception as exc:
        raise _explain(exc, args.timeout) from None
    finally:
        await context.close()


async def _check_selectors(page: Any, args: ScrapeInput) -> None:
    """Try every selector on the blank page first, so a typo names its argument."""
    named = [("wait_for", args.wait_for), ("click_more", args.click_more), ("items", args.items)]
    named += [(f"fields.{name}", selector.partition("@")[0]) for name, selector in args.fields.items()]
    await _try_selectors(page, named)


async def _try_selectors(page: Any, named: list[tuple[str, str | None]]) -> None:
    for argument, selector in named:
        if selector:
            try:
                await page.query_selector(selector)
            except Exception as exc:
                raise ToolArgumentError(argument, _("bad selector '{selector}': {name}").format(
                                                      selector=selector, name=str(exc).splitlines()[0])) from None


async def _interact(page: Any, args: ScrapeInput) -> int:
    if args.wait_for:
        await page.wait_for_selector(args.wait_for)
    for _turn in range(args.scroll):
        await page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        await page.wait_for_timeout(300)
    clicks = 0
    while args.click_more and clicks < args.max_clicks:
        button = await page.query_selector(args.click_more)
        if button is None or not await button.is_visible():
            break
        before = await page.evaluate("document.body.innerHTML.length")
        await button.click()
        clicks += 1
        try:  # wait until the click changed the page (new items rendered)
            await page.wait_for_function(f"document.body.innerHTML.length !== {before}", timeout=args.timeout * 1000)
        except Exception:
            break
    return clicks


async def _extract(page: Any, args: ScrapeInput) -> list[dict[str, Any]]:
    if not args.items:
        return []
    rows = []
    for element in await page.query_selector_all(args.items):
        if args.fields:
            rows.append({name: await _read(element, selector) for name, selector in args.fields.items()})
        else:
            rows.append({"text": await _read(element, "")})
    return rows


def _explain(exc: Exception, timeout: float) -> Exception:
    if isinstance(exc, ValueError):
        return exc
    text = str(exc).split("\n")[0]
    if "is not a valid selector" in text or "Unexpected token" in text or "SyntaxError" in text:
        return ValueError(_("bad selector: {text}").format(text=text))
    if "Timeout" in type(exc).__name__ or "Timeout" in text:
        return ValueError(_("timed out after waiting {timeout:g} s: {text}").format(timeout=timeout, text=text))
    return ValueError(f"{type(exc).__name__}: {text}")
