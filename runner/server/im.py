"""Approvals in team chat. When a run waits, an approval card goes to `[server] approval_channel` (a
`[notify.channels.<name>]`); a button press comes back to /im/<platform>, is checked against the
platform's signature, applied once (a repeated callback changes nothing) and answered with the card's
new state. Run completion and failure go to `[server] notify_channel` (default: the approval channel).

Signatures checked:
- Feishu/Lark: sha256_hex(X-Lark-Request-Timestamp + X-Lark-Request-Nonce + Encrypt Key + body)
  == X-Lark-Signature (the app's card request URL, "Encrypt Key" from the app's event settings);
- DingTalk: base64(HMAC-SHA256(app secret, timestamp + "\\n" + app secret)) == header `sign`, with
  `timestamp` within an hour;
- WeCom: sha1(sorted(token, timestamp, nonce, Encrypt)) == msg_signature, then AES-256-CBC with the
  EncodingAESKey (key = base64(EncodingAESKey + "="), iv = key[:16]).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import struct
import time
import xml.etree.ElementTree as ET
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from runner import atomic
from runner.config import ChannelConfig, Project
from runner.engine.events import Hooks
from runner.server.service import Conflict, Decided, FieldErrors, NotFound, Service
from runner.store import open_store

LABEL = {"approve": "已通过", "reject": "已驳回"}


FRESH_SECONDS = 3600  # platforms' callbacks older (or newer) than this are refused, as DingTalk documents


def card_secret(project: Project) -> bytes:
    """This project's key for card buttons (created once, readable by its owner only)."""
    path = project.state_dir / "card.key"
    if not path.exists():
        atomic.write_bytes(path, secrets.token_bytes(32))
        os.chmod(path, 0o600)
    return path.read_bytes()


def button_key(action: str, run_id: str, step: str, visit: int, secret: bytes) -> str:
    """What a card's button sends back: the decision it stands for, bound by an HMAC the platform's request
    cannot forge. A captured callback can only repeat its own decision (which is then `repeated`), never be
    replayed for another run, step, visit or action."""
    body = f"{action}|{run_id}|{step}|{visit}"
    return f"{body}|{hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()[:24]}"


def parse_key(key: str, secret: bytes) -> tuple[str, str, str, int]:
    action, run_id, step, visit, tag = key.split("|")
    expected = button_key(action, run_id, step, int(visit), secret).rsplit("|", 1)[1]
    if not hmac.compare_digest(expected, tag):
        raise ValueError("the button's key does not match this server's")
    return action, run_id, step, int(visit)


def approval_card(platform: str, run: dict[str, Any], link: str | None, secret: bytes) -> dict[str, Any]:
    """The card a platform shows, with approve / reject buttons and a link to the approval page."""
    pending = run["pending"]
    title = f"待审核：{pending['title']}"
    summary = f"剧本 **{run['playbook']}** · 运行 `{run['id']}`\n\n{pending.get('instructions') or ''}"
    keys = {a: button_key(a, run["id"], pending["step"], pending["visit"], secret) for a in ("approve", "reject")}
    if platform in ("feishu", "lark"):
        actions: list[dict[str, Any]] = [
            {"tag": "button", "type": "primary", "text": {"tag": "plain_text", "content": "通过"},
             "value": {"key": keys["approve"]}},
            {"tag": "button", "type": "danger", "text": {"tag": "plain_text", "content": "驳回"},
             "value": {"key": keys["reject"]}}]
        if link:
            actions.append({"tag": "button", "text": {"tag": "plain_text", "content": "打开审核页（可修改）"},
                            "url": link})
        return {"msg_type": "interactive", "card": {
            "config": {"wide_screen_mode": True, "update_multi": True},
            "header": {"title": {"tag": "plain_text", "content": title}, "template": "orange"},
            "elements": [{"tag": "markdown", "content": summary}, {"tag": "action", "actions": actions}]}}
    if platform == "dingtalk":
        buttons = [{"title": "通过", "actionURL": f"dtmd://dingtalkclient/sendMessage?content={keys['approve']}"},
                   {"title": "驳回", "actionURL": f"dtmd://dingtalkclient/sendMessage?content={keys['reject']}"}]
        if link:
            buttons.append({"title": "打开审核页（可修改）", "actionURL": link})
        return {"msgtype": "actionCard", "actionCard": {"title": title, "text": f"### {title}\n\n{summary}",
                                                        "btnOrientation": "1", "btns": buttons}}
    if platform == "wecom":
        card: dict[str, Any] = {
            "card_type": "button_interaction", "task_id": f"{run['id']}-{pending['step']}-{pending['visit']}"[:128],
            "main_title": {"title": title[:26], "desc": f"{run['playbook']} · {run['id']}"},
            "button_list": [{"text": "通过", "style": 1, "key": keys["approve"]},
                            {"text": "驳回", "style": 2, "key": keys["reject"]}]}
        if link:
            card["card_action"] = {"type": 1, "url": link}
        return {"msgtype": "template_card", "template_card": card}
    raise ValueError(f"approval cards need feishu, lark, dingtalk or wecom, not '{platform}'")


def decided_card(decided: Decided) -> dict[str, Any]:
    """Feishu's answer to a button press replaces the card: the buttons become the decision."""
    text = f"{LABEL.get(decided.action, decided.action)} · {decided.by} · 步骤 {decided.step}"
    return {"toast": {"type": "success", "content": text},
            "card": {"type": "raw", "data": {
                "header": {"title": {"tag": "plain_text", "content": text},
                           "template": "green" if decided.action == "approve" else "red"},
                "elements": [{"tag": "markdown", "content": f"运行 `{decided.run_id}`：{text}"}]}}}


# verification, one function per platform; each returns the decoded callback or None if forged
def verify_feishu(headers: Any, body: bytes, encrypt_key: str, now: float) -> bool:
    stamp, nonce = headers.get("x-lark-request-timestamp", ""), headers.get("x-lark-request-nonce", "")
    if not stamp.isdigit() or abs(now - int(stamp)) > FRESH_SECONDS:
        return False
    expected = hashlib.sha256((stamp + nonce + encrypt_key).encode() + body).hexdigest()
    return hmac.compare_digest(expected, headers.get("x-lark-signature", ""))


def verify_dingtalk(headers: Any, secret: str, now: float) -> bool:
    stamp = headers.get("timestamp", "")
    if not stamp.isdigit() or abs(now * 1000 - int(stamp)) > FRESH_SECONDS * 1000:
        return False
    digest = hmac.new(secret.encode(), f"{stamp}\n{secret}".encode(), hashlib.sha256).digest()
    return hmac.compare_digest(base64.b64encode(digest).decode(), headers.get("sign", ""))


def wecom_signature(token: str, stamp: str, nonce: str, encrypted: str) -> str:
    return hashlib.sha1("".join(sorted([token, stamp, nonce, encrypted])).encode()).hexdigest()


def wecom_decrypt(encrypted: str, aes_key: str) -> str:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = base64.b64decode(aes_key + "=")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(base64.b64decode(encrypted)) + decryptor.finalize()
    plain = plain[:-plain[-1]]  # PKCS#7
    length = struct.unpack(">I", plain[16:20])[0]
    return plain[20:20 + length].decode()


class Channels:
    """Secrets of the IM app per platform, from the environment named in `[server.im.<platform>]`."""

    def __init__(self, project: Project) -> None:
        self.config = project.settings.server.im

    def secret(self, platform: str, name: str) -> str | None:
        secrets = self.config.get(platform)  # type: ignore[call-overload]
        env = getattr(secrets, f"{name}_env", None) if secrets is not None else None
        return os.environ.get(env, "") or None if env else None


def _decide(request: Request, key: str, by: str) -> Decided | None:
    service: Service = request.app.state.service
    try:
        action, run_id, step, visit = parse_key(key, card_secret(service.project))
    except ValueError:
        return None
    comment = "（在聊天卡片上驳回，未写意见）" if action == "reject" else None
    try:
        return service.decide(run_id, action, by=by, comment=comment, step=step, visit=visit)
    except (NotFound, Conflict, FieldErrors):
        return None


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


async def feishu_callback(request: Request) -> Response:
    body = await request.body()
    channels = Channels(request.app.state.service.project)
    key = channels.secret("feishu", "encrypt_key")
    if not key or not verify_feishu(request.headers, body, key, time.time()):  # checked before the body is read
        data = _json(body)
        token = channels.secret("feishu", "verification_token")
        if data.get("type") == "url_verification" and token and \
                hmac.compare_digest(str(data.get("token", "")), token):  # the console's one-time URL check
            return JSONResponse({"challenge": data.get("challenge")})
        return PlainTextResponse("401: bad signature", status_code=401)
    data = _json(body)
    action = data.get("action") or (data.get("event") or {}).get("action") or {}
    operator = data.get("open_id") or ((data.get("event") or {}).get("operator") or {}).get("open_id", "?")
    decided = _decide(request, str((action.get("value") or {}).get("key", "")), f"feishu:{operator}")
    if decided is None:
        return JSONResponse({"toast": {"type": "error", "content": "这条审核已失效"}})
    return JSONResponse(decided_card(decided))


async def dingtalk_callback(request: Request) -> Response:
    secret = Channels(request.app.state.service.project).secret("dingtalk", "app_secret")
    if not secret or not verify_dingtalk(request.headers, secret, time.time()):
        return PlainTextResponse("401: bad signature", status_code=401)
    data = _json(await request.body())
    key = str((data.get("text") or {}).get("content", "")).strip() or str((data.get("value") or {}).get("key", ""))
    decided = _decide(request, key, f"dingtalk:{data.get('senderStaffId') or data.get('senderId', '?')}")
    if decided is None:
        return JSONResponse({"msgtype": "text", "text": {"content": "这条审核已失效"}})
    text = f"{LABEL.get(decided.action)}：{decided.run_id} 步骤 {decided.step}（{decided.by}）"
    return JSONResponse({"msgtype": "text", "text": {"content": text}, "decided": decided.action,
                         "repeated": decided.repeated})


async def wecom_callback(request: Request) -> Response:
    channels = Channels(request.app.state.service.project)
    token, aes_key = channels.secret("wecom", "token"), channels.secret("wecom", "aes_key")
    q = request.query_params
    if not token or not aes_key:
        return PlainTextResponse("401: WeCom callback not configured", status_code=401)
    if request.method == "GET":  # the console's URL check: echo the decrypted echostr
        echo = q.get("echostr", "")
        if not hmac.compare_digest(wecom_signature(token, q.get("timestamp", ""), q.get("nonce", ""), echo),
                                   q.get("msg_signature", "")):
            return PlainTextResponse("401: bad signature", status_code=401)
        return PlainTextResponse(wecom_decrypt(echo, aes_key))
    stamp = q.get("timestamp", "")
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > FRESH_SECONDS:
        return PlainTextResponse("401: stale or missing timestamp", status_code=401)
    try:
        encrypted = ET.fromstring(await request.body()).findtext("Encrypt") or ""
    except ET.ParseError:
        return PlainTextResponse("401: not a WeCom callback", status_code=401)
    if not hmac.compare_digest(wecom_signature(token, stamp, q.get("nonce", ""), encrypted),
                               q.get("msg_signature", "")):
        return PlainTextResponse("401: bad signature", status_code=401)
    try:
        event = ET.fromstring(wecom_decrypt(encrypted, aes_key))
    except (ValueError, ET.ParseError, struct.error, IndexError):
        return PlainTextResponse("401: cannot decrypt", status_code=401)
    decided = _decide(request, event.findtext("EventKey") or "", f"wecom:{event.findtext('FromUserName') or '?'}")
    # WeCom updates a card through its update_template_card API (needs an access token), not in the reply
    return PlainTextResponse("success" if decided else "expired")


ROUTES = [Route("/im/feishu", feishu_callback, methods=["POST"]),
          Route("/im/dingtalk", dingtalk_callback, methods=["POST"]),
          Route("/im/wecom", wecom_callback, methods=["GET", "POST"])]


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
        finally:
            store.close()
        config = self.project.settings.notify.channels.get(channel)
        if run is None or config is None:
            return
        platform = config.platform
        if status == "waiting" and platform in APP_SENDERS:  # an app's card: its buttons call back
            try:
                card = approval_card(platform.split("_")[0], run, self._link(run_id), card_secret(self.project))
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
            body = approval_card(platform, run, self._link(run_id), card_secret(self.project))
        else:
            from runner.chat import payload

            title = f"{'✅ 完成' if status == 'done' else '❌ 失败'}：{run['playbook']}"
            body = payload(platform, title, f"运行 `{run_id}`" + (f"\n\n{error}" if error else ""), page)
        async with httpx.AsyncClient(timeout=15) as client:
            try:
                response = await client.post(url, json=body)
                self.sent.append({"channel": channel, "status": response.status_code, "body": body})
            except httpx.HTTPError as exc:  # a chat outage must not fail the run
                self.sent.append({"channel": channel, "error": type(exc).__name__, "body": body})


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
            raise RuntimeError(f"Feishu refused the app credentials: {auth.text[:200]}")
        sent = await client.post(f"{base}/open-apis/im/v1/messages", params={"receive_id_type": "chat_id"},
                                 headers={"Authorization": f"Bearer {token}"},
                                 json={"receive_id": config.chat_id, "msg_type": "interactive",
                                       "content": json.dumps(card["card"], ensure_ascii=False)})
        if sent.json().get("code", 0) != 0:
            raise RuntimeError(f"Feishu refused the card: {sent.text[:200]}")


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
            raise RuntimeError(f"WeCom refused the app credentials: {auth.text[:200]}")
        sent = await client.post(f"{base}/cgi-bin/message/send", params={"access_token": token}, json={
            "touser": config.touser, "msgtype": "template_card",
            "agentid": config.agent_id or 0, "template_card": card["template_card"]})
        if sent.json().get("errcode", 0) != 0:
            raise RuntimeError(f"WeCom refused the card: {sent.text[:200]}")


APP_SENDERS = {"feishu_app": send_feishu_app, "lark_app": send_feishu_app, "wecom_app": send_wecom_app}
