"""Chat message bodies per platform (Feishu/Lark, DingTalk, WeCom, Slack): one markdown message with a
title and an optional link button. The `notify.webhook` tool and the server's run notices send the same shape."""

from __future__ import annotations

from typing import Any

from runner.i18n import _


def payload(platform: str, title: str, content: str, link: str | None) -> dict[str, Any]:
    if platform in ("feishu", "lark"):
        elements: list[dict[str, Any]] = [{"tag": "markdown", "content": content}]
        if link:
            elements.append({"tag": "action", "actions": [{"tag": "button", "type": "primary", "url": link,
                                                           "text": {"tag": "plain_text", "content": _("Details")}}]})
        return {"msg_type": "interactive", "card": {
            "config": {"wide_screen_mode": True},
            "header": {"title": {"tag": "plain_text", "content": title}, "template": "blue"},
            "elements": elements}}
    details = _("Details")
    text = f"{content}\n\n[{details}]({link})" if link else content
    if platform == "dingtalk":
        return {"msgtype": "markdown", "markdown": {"title": title, "text": f"### {title}\n\n{text}"}}
    if platform == "wecom":
        return {"msgtype": "markdown", "markdown": {"content": f"**{title}**\n{text}"}}
    slack_text = f"{content}\n<{link}|{details}>" if link else content
    return {"text": title, "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": slack_text[:3000]}}]}
