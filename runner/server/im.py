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

A verified callback decides only through the channel its card went to (the button's key names it): a key coming
back through another platform, from another conversation than the channel's `chat_id`, or pressed by someone not
in the channel's `approvers` decides nothing.
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
from runner.i18n import N_, _
from runner.server.service import Conflict, Decided, FieldErrors, NotFound, Service
from runner.wording import status


def _decided_word(action: str) -> str:
    return status("approved" if action == "approve" else "rejected" if action == "reject" else action)


# how old (or new) a platform's callback may be: DingTalk documents one hour; Feishu and WeCom document none, but
# Feishu waits 3 s for a card's answer and WeCom retries within seconds, so five minutes covers clock drift
FRESH_SECONDS = {"feishu": 300, "dingtalk": 3600, "wecom": 300}


def decided_card(decided: Decided) -> dict[str, Any]:
    """Feishu's answer to a button press replaces the card: the buttons become the decision."""
    text = _("{decision} · {by} · step {step}").format(decision=_decided_word(decided.action), by=decided.by,
                                                         step=decided.step)
    return {"toast": {"type": "success", "content": text},
            "card": {"type": "raw", "data": {
                "header": {"title": {"tag": "plain_text", "content": text},
                           "template": "green" if decided.action == "approve" else "red"},
                "elements": [{"tag": "markdown", "content": _("run `{run_id}`: {text}").format(
                    run_id=decided.run_id, text=text)}]}}}


# verification, one function per platform; each returns the decoded callback or None if forged
def verify_feishu(headers: Any, body: bytes, encrypt_key: str, now: float) -> bool:
    stamp, nonce = headers.get("x-lark-request-timestamp", ""), headers.get("x-lark-request-nonce", "")
    if not stamp.isdigit() or abs(now - int(stamp)) > FRESH_SECONDS["feishu"]:
        return False
    expected = hashlib.sha256((stamp + nonce + encrypt_key).encode() + body).hexdigest()
    return hmac.compare_digest(expected, headers.get("x-lark-signature", ""))


def verify_dingtalk(headers: Any, secret: str, now: float) -> bool:
    stamp = headers.get("timestamp", "")
    if not stamp.isdigit() or abs(now * 1000 - int(stamp)) > FRESH_SECONDS["dingtalk"] * 1000:
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


EXPIRED = N_("this approval is no longer valid")
PLATFORMS = {"feishu": ("feishu", "lark", "feishu_app", "lark_app"), "dingtalk": ("dingtalk",),
             "wecom": ("wecom", "wecom_app")}


def _decide(request: Request, key: str, platform: str, sender: str, conversation: str | None) -> Decided | str:
    """Applies the decision a verified callback carries, or says (in the chat) why it decides nothing."""
    service: Service = request.app.state.service
    project = service.project
    try:
        action, run_id, step, visit, channel = parse_key(key, card_secret(project))
    except ValueError:
        return _(EXPIRED)
    name = channel or project.settings.server.approval_channel or ""
    config = project.settings.notify.channels.get(name)
    if config is None or config.platform not in PLATFORMS[platform]:
        return _(EXPIRED)  # a card this server never sent through this platform
    if config.chat_id and conversation != config.chat_id:
        return _("this card can be used only in the group it was sent to (a forwarded card does not count)")
    if config.approvers and sender not in config.approvers and f"{platform}:{sender}" not in config.approvers:
        return _("{sender} is not among the reviewers of '{name}' ([notify.channels.{name}] approvers in "
                 "playbook.toml)").format(sender=sender, name=name)
    comment = _("(rejected on a chat card, without a comment)") if action == "reject" else None
    try:
        return service.decide(run_id, action, by=f"{platform}:{sender}", comment=comment, step=step, visit=visit)
    except (NotFound, Conflict, FieldErrors):
        return _(EXPIRED)


def _json(body: bytes) -> dict[str, Any]:
    try:
        return _dict(json.loads(body or b"{}"))
    except (ValueError, UnicodeDecodeError):
        return {}


def _dict(value: Any) -> dict[str, Any]:
    """A signed body is the platform's, but its shape is still only what it says: anything else reads as empty."""
    return value if isinstance(value, dict) else {}


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
    event = _dict(data.get("event"))  # schema 2.0 callbacks nest what the old ones send at the top
    action = _dict(data.get("action") or event.get("action"))
    operator = data.get("open_id") or _dict(event.get("operator")).get("open_id", "?")
    chat = data.get("open_chat_id") or _dict(event.get("context")).get("open_chat_id")
    key = str(_dict(action.get("value")).get("key", ""))
    decided = _decide(request, key, "feishu", str(operator), str(chat) if chat else None)
    if isinstance(decided, str):
        return JSONResponse({"toast": {"type": "error", "content": decided}})
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
    key = str(_dict(data.get("text")).get("content", "")).strip() or str(_dict(data.get("value")).get("key", ""))
    sender = str(data.get("senderStaffId") or data.get("senderId") or "?")
    conversation = data.get("conversationId")
    decided = _decide(request, key, "dingtalk", sender, str(conversation) if conversation else None)
    if isinstance(decided, str):
        return JSONResponse({"msgtype": "text", "text": {"content": decided}})
    text = _("{decision}: {run_id} step {step} ({by})").format(decision=_decided_word(decided.action),
                                                                run_id=decided.run_id, step=decided.step, by=decided.by)
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
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > FRESH_SECONDS["wecom"]:
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
    decided = _decide(request, event.findtext("EventKey") or "", "wecom", event.findtext("FromUserName") or "?",
                      event.findtext("ChatId"))
    # WeCom updates a card through its update_template_card API (needs an access token), not in the reply
    return PlainTextResponse("expired" if isinstance(decided, str) else "success")


ROUTES = [Route("/im/feishu", feishu_callback, methods=["POST"]),
          Route("/im/dingtalk", dingtalk_callback, methods=["POST"]),
          Route("/im/wecom", wecom_callback, methods=["GET", "POST"])]


