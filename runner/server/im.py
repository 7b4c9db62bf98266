"""Approvals in team chat, the callback half: the card `runner/cards.py` sent to `[server] approval_channel` has
buttons; a press comes back to /im/<platform>, is checked against the platform's signature, applied once (a
repeated callback changes nothing) and answered with the card's new state.

Signatures checked:
- Feishu/Lark: sha256_hex(X-Lark-Request-Timestamp + X-Lark-Request-Nonce + Encrypt Key + body)
  == X-Lark-Signature (the app's card request URL, "Encrypt Key" from the app's event settings);
- DingTalk: base64(HMAC-SHA256(app secret, timestamp + "\\n" + app secret)) == header `sign`, with
  `timestamp` within an hour. That signature covers the time, not the body: headers captured from one callback
  would carry any other body (another decision, another name) for the hour. So each signature is taken once
  (recorded in the store): DingTalk signs every callback anew, and a replay finds its signature used;
- WeCom: sha1(sorted(token, timestamp, nonce, Encrypt)) == msg_signature, then AES-256-CBC with the
  EncodingAESKey (key = base64(EncodingAESKey + "="), iv = key[:16]).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import struct
import time
import xml.etree.ElementTree as ET
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from runner.cards import card_secret, parse_key
from runner.config import Project
from runner.server.service import Conflict, Decided, FieldErrors, NotFound, Service

LABEL = {"approve": "已通过", "reject": "已驳回"}


FRESH_SECONDS = 3600  # platforms' callbacks older (or newer) than this are refused, as DingTalk documents


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


IM_CALLBACKS = "~im"  # the store's claim_once holder for signatures already taken


async def dingtalk_callback(request: Request) -> Response:
    secret = Channels(request.app.state.service.project).secret("dingtalk", "app_secret")
    if not secret or not verify_dingtalk(request.headers, secret, time.time()):
        return PlainTextResponse("401: bad signature", status_code=401)
    if not request.app.state.service.store.claim_once(IM_CALLBACKS, f"dingtalk-sign:{request.headers['sign']}"):
        return PlainTextResponse("409: this signature was used before — a replayed callback; DingTalk signs each "
                                 "callback anew", status_code=409)
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


