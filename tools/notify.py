"""notify.webhook: markdown messages to Feishu/Lark, DingTalk (signed), WeCom and Slack robots."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
import urllib.parse
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from runner.chat import payload
from runner.i18n import _
from runner.registry import ToolContext, tool
from tools.http import check_url

if TYPE_CHECKING:  # httpx loads when a request is made, not when `playbook validate` lists tools
    pass

Platform = Literal["feishu", "lark", "dingtalk", "wecom", "slack"]


class NotifyInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    platform: Platform | None = Field(None, description="robot kind; taken from the channel if omitted")
    url: str | None = Field(None, description="webhook URL (better: a channel from playbook.toml)")
    channel: str | None = Field(None, description="[notify.channels.<name>] in playbook.toml: platform, "
                                                  "url_env, secret_env")
    title: str
    content: str = Field(description="markdown")
    link: str | None = Field(None, description="URL shown as a button (default: the run's page)")
    secret: str | None = Field(None, description="signing secret (DingTalk, Feishu); use ${{ secrets.X }}")


class NotifyOutput(BaseModel):
    platform: str
    status: int
    response: str


def signature(secret: str, timestamp: str, platform: str) -> str:
    """DingTalk: HMAC-SHA256(key=secret, msg=ts\\nsecret); Feishu: HMAC-SHA256(key=ts\\nsecret, msg='')."""
    string_to_sign = f"{timestamp}\n{secret}".encode()
    if platform == "dingtalk":
        digest = hmac.new(secret.encode(), string_to_sign, hashlib.sha256).digest()
    else:
        digest = hmac.new(string_to_sign, b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _resolve(args: NotifyInput, ctx: ToolContext) -> tuple[str, str, str | None]:
    platform, url, secret = args.platform, args.url, args.secret
    if args.channel:
        channels = ctx.settings.notify.channels
        if args.channel not in channels:
            raise ValueError(_("no channel '{channel}' under [notify.channels] in playbook.toml (channels: "
                               "{channels})").format(channel=args.channel, channels=", ".join(channels) or _("none")))
        channel = channels[args.channel]
        platform = platform or channel.platform
        url = url or os.environ.get(channel.url_env or "", "") or None
        secret = secret or os.environ.get(channel.secret_env or "", "") or None
        if not url:
            raise ValueError(_("channel '{channel}': set the environment variable {value} to the webhook URL").format(
                                 channel=args.channel, value=channel.url_env or '(url_env)'))
    if not platform or not url:
        raise ValueError(_("give platform and url, or a channel"))
    return platform, url, secret


@tool("notify.webhook", sends_secrets=True)
async def notify_webhook(args: NotifyInput, ctx: ToolContext) -> NotifyOutput:
    """Send a markdown message to a Feishu/Lark, DingTalk, WeCom or Slack robot."""
    platform, url, secret = _resolve(args, ctx)
    check_url(url, ctx)
    base = ctx.settings.server.base_url
    link = args.link or (f"{base.rstrip('/')}/runs/{ctx.run_id}" if base else None)
    body = payload(platform, args.title, args.content, link)
    if secret and platform == "dingtalk":
        stamp = str(int(time.time() * 1000))
        sign = urllib.parse.quote_plus(signature(secret, stamp, platform))
        url = f"{url}{'&' if '?' in url else '?'}timestamp={stamp}&sign={sign}"
    elif secret and platform in ("feishu", "lark"):
        stamp = str(int(time.time()))
        body = {"timestamp": stamp, "sign": signature(secret, stamp, platform), **body}
    import httpx

    async with httpx.AsyncClient(timeout=15) as client:
        try:
            response = await client.post(url, json=body)
        except httpx.HTTPError as exc:
            raise ValueError(_("{platform} webhook unreachable: {reason}").format(
                                 platform=platform, reason=type(exc).__name__)) from None
    text = response.text[:500]
    failed = response.status_code >= 400
    try:
        data = response.json()
        code = data.get("errcode", data.get("code", data.get("StatusCode", 0))) if isinstance(data, dict) else 0
        failed = failed or bool(code)
    except ValueError:
        failed = failed or (platform == "slack" and text.strip() != "ok")
    if failed:
        raise ValueError(_("{platform} webhook refused the message (HTTP {status_code}): {text}").format(
                             platform=platform, status_code=response.status_code, text=text))
    return NotifyOutput(platform=platform, status=response.status_code, response=text)
