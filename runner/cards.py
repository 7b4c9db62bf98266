"""Approval cards and run notices in team chat, sent from whichever process reaches the pause or the end — the
CLI, the scheduler, the web service or a team worker (`runner/assembly.py` adds the hook wherever playbook.toml names
a channel). A card's buttons carry a key bound by this project's secret; `runner/server/im.py` checks the platform's
callback and applies the decision. Each card and notice is sent once per pause and per end, whichever workers see it
(the store's `claim_once`)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import secrets
from typing import Any, NamedTuple

from runner import atomic
from runner.config import ChannelConfig, Project
from runner.engine.events import Hooks
from runner.i18n import _
from runner.store import open_store


def card_secret(project: Project) -> bytes:
    """This project's key for card buttons (created once, readable by its owner only)."""
    path = project.state_dir / "card.key"
    if not path.exists():
        atomic.write_bytes(path, secrets.token_bytes(32))
        os.chmod(path, 0o600)
    return path.read_bytes()


def button_key(action: str, run_id: str, step: str, visit: int, *, channel: str, secret: bytes) -> str:
    """What a card's button sends back: the decision it stands for and the channel the card went to, bound by an
    HMAC the platform's request cannot forge. A captured callback can only repeat its own decision (which is then
    `repeated`), never be replayed for another run, step, visit, action or channel."""
    body = f"{action}|{run_id}|{step}|{visit}|{channel}"
    return f"{body}|{hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()[:24]}"


class ButtonKey(NamedTuple):
    action: str
    run_id: str
    step: str
    visit: int
    channel: str | None  # None: a card sent before keys named their channel (its channel is the approval channel)


def parse_key(key: str, secret: bytes) -> ButtonKey:
    parts = key.split("|")
    if len(parts) == 5:  # action|run|step|visit|tag, as cards were keyed before they named their channel
        body, tag = "|".join(parts[:4]), parts[4]
        channel = None
    elif len(parts) == 6:
        body, tag, channel = "|".join(parts[:5]), parts[5], parts[4]
    else:
        raise ValueError(_("not a button key"))
    expected = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()[:24]
    if not parts[3].isdigit() or not hmac.compare_digest(expected, tag):
        raise ValueError(_("the button's key does not match this server's"))
    return ButtonKey(parts[0], parts[1], parts[2], int(parts[3]), channel)


def approval_card(platform: str, run: dict[str, Any], link: str | None, *, channel: str,
                  secret: bytes) -> dict[str, Any]:
    """The card a platform shows in `channel`, with approve / reject buttons and a link to the approval page."""
    pending = run["pending"]
    title = _("Waiting for approval: {title}").format(title=pending["title"])
    summary = _("playbook **{playbook}** · run `{run_id}`").format(playbook=run["playbook"], run_id=run["id"]) + \
        f"\n\n{pending.get('instructions') or ''}"
    approve, reject, open_page = _("Approve"), _("Reject"), _("Open the review page (to edit)")
    keys = {a: button_key(a, run["id"], pending["step"], pending["visit"], channel=channel, secret=secret)
            for a in ("approve", "reject")}
    if platform in ("feishu", "lark"):
        actions: list[dict[str, Any]] = [
            {"tag": "button", "type": "primary", "text": {"tag": "plain_text", "content": approve},
             "value": {"key": keys["approve"]}},
            {"tag": "button", "type": "danger", "text": {"tag": "plain_text", "content": reject},
             "value": {"key": keys["reject"]}}]
        if link:
            actions.append({"tag": "button", "text": {"tag": "plain_text", "content": open_page},
                            "url": link})
        return {"msg_type": "interactive", "card": {
            "config": {"wide_screen_mode": True, "update_multi": True},
            "header": {"title": {"tag": "plain_text", "content": title}, "template": "orange"},
            "elements": [{"tag": "markdown", "content": summary}, {"tag": "action", "actions": actions}]}}
    if platform == "dingtalk":
        buttons = [{"title": approve, "actionURL": f"dtmd://dingtalkclient/sendMessage?content={keys['approve']}"},
                   {"title": reject, "actionURL": f"dtmd://dingtalkclient/sendMessage?content={keys['reject']}"}]
        if link:
            buttons.append({"title": open_page, "actionURL": link})
        return {"msgtype": "actionCard", "actionCard": {"title": title, "text": f"### {title}\n\n{summary}",
                                                        "btnOrientation": "1", "btns": buttons}}
    if platform == "wecom":
        card: dict[str, Any] = {
            "card_type": "button_interaction", "task_id": f"{run['id']}-{pending['step']}-{pending['visit']}"[:128],
            "main_title": {"title": title[:26], "desc": f"{run['playbook']} · {run['id']}"},
            "button_list": [{"text": approve, "style": 1, "key": keys["approve"]},
                            {"text": reject, "style": 2, "key": keys["reject"]}]}
        if link:
            card["card_action"] = {"type": 1, "url": link}
        return {"msgtype": "template_card", "template_card": card}
    raise ValueError(_("approval cards need feishu, lark, dingtalk or wecom, not '{platform}'").format(
                         platform=platform))



class ApprovalCards(Hooks):
    """Sends the approval card when a run starts waiting, and a note when it finishes or fails."""

    def __init__(self, project: Project) -> None:
        self.project = project
        server = project.settings.server
        self.approval_channel = server.approval_channel
        self.notify_channel = server.notices_to
        self.base = (server.base_url or "").rstrip("/") or None
        self.sent: list[dict[str, Any]] = []
        self.pending: set[asyncio.Task[None]] = set()

    async def flush(self) -> None:
        """Wait for cards and notices still being sent (a CLI process is about to exit)."""
        while self.pending:
            await asyncio.gather(*list(self.pending), return_exceptions=True)

    def on_run_end(self, **event: Any) -> None:
        run_id, status = event.get("run_id", ""), event.get("status")
        if "." in run_id:  # sub-playbook runs report through their parent
            return
        channel = self.approval_channel if status == "waiting" else self.notify_channel
        if channel and status in ("waiting", "done", "failed"):
            task = asyncio.get_running_loop().create_task(self._send(channel, run_id, str(status), event.get("error")))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)

    def _link(self, run_id: str) -> str | None:
        return f"{self.base}/runs/{run_id}/approval" if self.base else None

    async def _send(self, channel: str, run_id: str, status: str, error: str | None) -> None:
        import httpx

        store = open_store(self.project)
        try:
            run = store.get_run(run_id)
            if run is not None and not store.claim_once(run_id, _occasion(run, status)):
                return  # another process (a worker the run moved to) sent this card or notice already
        finally:
            store.close()
        config = self.project.settings.notify.channels.get(channel)
        if run is None or config is None:
            return
        platform = config.platform
        if status == "waiting" and platform in APP_SENDERS:  # an app's card: its buttons call back
            try:
                card = approval_card(platform.split("_")[0], run, self._link(run_id), channel=channel,
                                     secret=card_secret(self.project))
                await APP_SENDERS[platform](config, card)
                self.sent.append({"channel": channel, "status": 200, "app": platform})
            except Exception as exc:  # a chat outage must not fail the run
                self.sent.append({"channel": channel, "error": f"{type(exc).__name__}: {exc}"})
            return
        url = os.environ.get(config.url_env or "", "")
        if not url:
            return
        page = f"{self.base}/runs/{run_id}" if self.base else None
        if status == "waiting":
            body = approval_card(platform, run, self._link(run_id), channel=channel, secret=card_secret(self.project))
        else:
            from runner.chat import payload

            title = (_("✅ done: {playbook}") if status == "done" else _("❌ failed: {playbook}")).format(
                playbook=run["playbook"])
            said = _("run `{run_id}`").format(run_id=run_id) + (f"\n\n{error}" if error else "")
            body = payload(platform, title, said, page)
        async with httpx.AsyncClient(timeout=15) as client:
            try:
                response = await client.post(url, json=body)
                self.sent.append({"channel": channel, "status": response.status_code, "body": body})
            except httpx.HTTPError as exc:  # a chat outage must not fail the run
                self.sent.append({"channel": channel, "error": type(exc).__name__, "body": body})


def _occasion(run: dict[str, Any], status: str) -> str:
    """What a card or notice is sent once for: one pause (its step and visit), or one end of the run."""
    if status == "waiting":
        pending = run.get("pending") or {}
        return f"card:{pending.get('step')}:{pending.get('visit')}"
    return f"notice:{status}:{run.get('ended_at')}"


async def send_feishu_app(config: ChannelConfig, card: dict[str, Any]) -> None:
    """A card sent by a Feishu/Lark app (not a group's custom bot), so its buttons call /im/feishu."""
    import httpx

    base = (config.api_base or "https://open.feishu.cn").rstrip("/")
    async with httpx.AsyncClient(timeout=15) as client:
        auth = await client.post(f"{base}/open-apis/auth/v3/tenant_access_token/internal", json={
            "app_id": os.environ.get(config.app_id_env or "", ""),
            "app_secret": os.environ.get(config.app_secret_env or "", "")})
        token = auth.json().get("tenant_access_token")
        if not token:
            raise RuntimeError(_("Feishu refused the app credentials: {name}").format(name=auth.text[:200]))
        sent = await client.post(f"{base}/open-apis/im/v1/messages", params={"receive_id_type": "chat_id"},
                                 headers={"Authorization": f"Bearer {token}"},
                                 json={"receive_id": config.chat_id, "msg_type": "interactive",
                                       "content": json.dumps(card["card"], ensure_ascii=False)})
        if sent.json().get("code", 0) != 0:
            raise RuntimeError(_("Feishu refused the card: {name}").format(name=sent.text[:200]))


async def send_wecom_app(config: ChannelConfig, card: dict[str, Any]) -> None:
    """A template card sent by a WeCom app (group robots cannot carry interactive buttons)."""
    import httpx

    base = (config.api_base or "https://qyapi.weixin.qq.com").rstrip("/")
    async with httpx.AsyncClient(timeout=15) as client:
        auth = await client.get(f"{base}/cgi-bin/gettoken", params={
            "corpid": os.environ.get(config.corp_id_env or "", ""),
            "corpsecret": os.environ.get(config.secret_env or "", "")})
        token = auth.json().get("access_token")
        if not token:
            raise RuntimeError(_("WeCom refused the app credentials: {name}").format(name=auth.text[:200]))
        sent = await client.post(f"{base}/cgi-bin/message/send", params={"access_token": token}, json={
            "touser": config.touser, "msgtype": "template_card",
            "agentid": config.agent_id or 0, "template_card": card["template_card"]})
        if sent.json().get("errcode", 0) != 0:
            raise RuntimeError(_("WeCom refused the card: {name}").format(name=sent.text[:200]))


APP_SENDERS = {"feishu_app": send_feishu_app, "lark_app": send_feishu_app, "wecom_app": send_wecom_app}
