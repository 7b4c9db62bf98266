"""`playbook serve`: token and CSRF rules, the JSON API, approval edits with errors in place, IM card
callbacks with real signatures (and refused forgeries), cards and notices sent to a loopback robot."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import os
import shutil
import struct
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from runner.cards import ApprovalCards, button_key, card_secret
from runner.config import load_project
from runner.server import create_app
from runner.server.im import wecom_signature
from runner.server.service import Service
from runner.testing import FakeLLMServer
from tests.conftest import ROOT

REVIEWS = ROOT / "examples" / "reviews_zh.csv"
FEISHU_KEY, DING_SECRET, WECOM_TOKEN = "feishu-encrypt-key", "ding-app-secret", "wecom-token"
WECOM_AES = base64.b64encode(bytes(range(32))).decode().rstrip("=")  # a 43-character EncodingAESKey


@pytest.fixture
def project(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (project_dir / "playbooks").mkdir()
    shutil.copy(ROOT / "playbooks" / "feedback_digest.yaml", project_dir / "playbooks")
    with (project_dir / "playbook.toml").open("a", encoding="utf-8") as fh:
        fh.write('\n[server]\ntoken = "s3cret-token"\nbase_url = "http://ops.example"\napproval_channel = "ops"\n'
                 '[server.im.feishu]\nencrypt_key_env = "FEISHU_KEY"\n[server.im.dingtalk]\n'
                 'app_secret_env = "DING_SECRET"\n[server.im.wecom]\ntoken_env = "WECOM_TOKEN"\n'
                 'aes_key_env = "WECOM_AES"\n'
                 '[notify.channels.ops]\nplatform = "feishu"\nurl_env = "OPS_WEBHOOK"\n'
                 '[notify.channels.ding]\nplatform = "dingtalk"\nurl_env = "DING_WEBHOOK"\n'
                 '[notify.channels.wecom]\nplatform = "wecom_app"\n')
    for name, value in {"FEISHU_KEY": FEISHU_KEY, "DING_SECRET": DING_SECRET, "WECOM_TOKEN": WECOM_TOKEN,
                        "WECOM_AES": WECOM_AES}.items():
        monkeypatch.setenv(name, value)
    return project_dir


class Robot:
    """A loopback chat robot: records every message posted to it, answers like Feishu does."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        robot = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                robot.received.append({"path": self.path, "auth": self.headers.get("authorization"),
                                       "body": json.loads(self.rfile.read(int(self.headers["content-length"])))})
                answer = b'{"code": 0, "msg": "success", "tenant_access_token": "t-42"}'
                self.send_response(200)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"

    def __enter__(self) -> Robot:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def robot(monkeypatch: pytest.MonkeyPatch) -> Iterator[Robot]:
    with Robot() as chat:
        monkeypatch.setenv("OPS_WEBHOOK", chat.url)
        yield chat


def client(project: Path, host: str = "127.0.0.1", *, token: bool = True) -> TestClient:
    """A client on this machine addressing the server as 127.0.0.1 — with the token, as a script using the API's
    writes must be (`token=False`: a browser's reads and forms) — or one elsewhere using base_url's name."""
    address = "http://127.0.0.1:8600" if host == "127.0.0.1" else "http://ops.example"
    headers = {"Authorization": "Bearer s3cret-token"} if host == "127.0.0.1" and token else {}
    return TestClient(create_app(load_project()), client=(host, 50000), follow_redirects=False, base_url=address,
                      headers=headers)


def wait_for(http: TestClient, run_id: str, status: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = http.get(f"/api/runs/{run_id}").json()
        if run["status"] == status:
            return dict(run)
        if run["status"] in ("done", "failed", "cancelled"):
            break
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} is {run['status']}, not {status}: {run.get('error')}")


def start_waiting_run(http: TestClient) -> dict[str, Any]:
    started = http.post("/api/runs", json={"playbook": "feedback_digest",
                                           "inputs": {"comments": str(REVIEWS), "limit": 40}})
    assert started.status_code == 202, started.text
    return wait_for(http, started.json()["run_id"], "waiting")


def test_non_local_requests_need_the_token(project: Path) -> None:
    with client(project, host="203.0.113.9") as remote:
        for path in ("/", "/playbooks", "/schedules", "/api/runs", "/runs/x", "/start/feedback_digest"):
            assert remote.get(path).status_code == 401, path
        assert remote.post("/api/runs", json={}).status_code == 401
        assert remote.get("/api/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert remote.get("/api/runs", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
        assert remote.get("/api/runs", params={"token": "s3cret-token"}).status_code == 401  # header only for the API
        landed = remote.get("/", params={"token": "s3cret-token"})
        assert landed.status_code == 303 and "token" not in landed.headers["location"]
        assert remote.get("/").status_code == 200  # the cookie set by that redirect
    with client(project, token=False) as local:
        assert local.get("/api/runs").status_code == 200  # loopback reads need no token
        assert local.get("/").status_code == 200
        # the API's writes do, from this machine too: a local process is not thereby the reviewer
        for path in ("/api/runs", "/api/runs/x/decision", "/api/runs/x/resume"):
            assert local.post(path, json={"action": "approve"}).status_code == 401, path
        proxied = local.get("/api/runs", headers={"X-Forwarded-For": "203.0.113.9"})
        assert proxied.status_code == 401  # behind a reverse proxy every client looks local: not trusted


def test_without_a_configured_token_only_local_requests_are_served(project: Path) -> None:
    text = (project / "playbook.toml").read_text(encoding="utf-8").replace('token = "s3cret-token"\n', "")
    (project / "playbook.toml").write_text(text, encoding="utf-8")
    with client(project, host="203.0.113.9") as remote:
        refused = remote.get("/", headers={"Authorization": "Bearer anything"})
        assert refused.status_code == 403 and "set [server] token" in refused.text
    with client(project, token=False) as local:  # the page works; the API's writes say what they need
        assert local.get("/").status_code == 200
        refused = local.post("/api/runs/x/decision", json={"action": "approve"})
        assert refused.status_code == 403 and "the page and the CLI work without one" in refused.text


def test_forms_need_their_csrf_token_and_the_api_json(project: Path) -> None:
    with client(project) as http:
        page = http.get("/start/feedback_digest")
        assert page.status_code == 200 and 'name="in_comments"' in page.text
        forged = http.post("/start/feedback_digest", data={"in_comments": str(REVIEWS), "csrf": "guess"})
        assert forged.status_code == 403 and "CSRF" in forged.text
        cross = http.post("/start/feedback_digest", data={"csrf": http.cookies["playbook_csrf"]},
                          headers={"origin": "http://evil.example"})
        assert cross.status_code == 403
        as_form = http.post("/api/runs", data={"playbook": "feedback_digest"})
        assert as_form.status_code == 415


def test_start_form_shows_input_errors_next_to_the_field(project: Path, server: FakeLLMServer) -> None:
    with client(project) as http:
        http.get("/start/feedback_digest")
        bad = http.post("/start/feedback_digest", data={"csrf": http.cookies["playbook_csrf"],
                                                        "in_comments": str(REVIEWS), "in_limit": "二十"})
        assert bad.status_code == 422 and "应是整数" in bad.text and 'value="二十"' in bad.text
        good = http.post("/start/feedback_digest", data={"csrf": http.cookies["playbook_csrf"],
                                                         "in_comments": str(REVIEWS), "in_limit": "20",
                                                         "in_review": "true"})  # the box is checked by default
        assert good.status_code == 303
        run_id = good.headers["location"].rsplit("/", 1)[-1]
        wait_for(http, run_id, "waiting")
        assert "去审核" in http.get("/").text


def test_approval_edits_are_validated_in_place_and_audited(project: Path, server: FakeLLMServer) -> None:
    with client(project) as http:
        run = start_waiting_run(http)
        page = http.get(f"/runs/{run['id']}/approval")
        assert page.status_code == 200 and 'id="edit_themes"' in page.text
        csrf = http.cookies["playbook_csrf"]
        form = {"csrf": csrf, "step": "review", "visit": "1", "action": "approve", "by": "运营小王"}
        broken = http.post(f"/runs/{run['id']}/approval", data={**form, "edit_themes": "[{"})
        assert broken.status_code == 422 and 'id="error-themes"' in broken.text and "不是有效的 JSON" in broken.text
        wrong = http.post(f"/runs/{run['id']}/approval",
                          data={**form, "edit_themes": json.dumps([{"name": "物流", "count": "很多", "quotes": [],
                                                                     "action": "催"}])})
        assert wrong.status_code == 422 and 'id="error-themes"' in wrong.text and "count" in wrong.text
        assert http.get(f"/api/runs/{run['id']}").json()["status"] == "waiting"  # nothing applied
        themes = [{"name": "物流太慢", "count": 12, "quotes": ["等了一周"], "action": "换快递"}]
        ok = http.post(f"/runs/{run['id']}/approval",
                       data={**form, "edit_themes": json.dumps(themes, ensure_ascii=False)})
        assert ok.status_code == 303
        stale = http.post(f"/runs/{run['id']}/approval", data={**form, "action": "reject", "comment": "晚了一步"})
        assert stale.status_code == 409 and "运营小王" in stale.text  # the second reviewer learns it did not apply
        assert "<h2>这份草稿已经处理过了</h2>" in stale.text  # a page, with the way back to the run
        assert f'href="/runs/{run["id"]}" id="message-link"' in stale.text
        done = wait_for(http, run["id"], "done")
        assert done["outputs"]["themes"] == themes
        (record,) = done["approvals"]
        assert record["by"] == "运营小王" and any(d["path"].startswith("themes") for d in record["diff"])
        detail = http.get(f"/runs/{run['id']}").text
        assert "物流太慢" in detail
        assert done["outputs"]["report"] not in detail  # the output is the report's download link, not its path
        assert f'<dd><a href="/runs/{run["id"]}/files/report.md">report.md</a></dd>' in detail
        assert "reviews_zh.csv" in detail and "请标注" in detail  # what the load and label steps were given
        report = http.get(f"/runs/{run['id']}/files/report.md")
        assert report.status_code == 200 and "物流太慢" in report.text
        assert '"event": "approval"' in http.get(f"/runs/{run['id']}/files/events.jsonl").text
        assert http.get(f"/runs/{run['id']}/files/..%2Fstate.db").status_code == 404


def feishu_post(http: TestClient, body: dict[str, Any] | bytes, key: str = FEISHU_KEY, age: float = 0) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    stamp, nonce = str(int(time.time() - age)), "n0nce"
    signature = hashlib.sha256((stamp + nonce + key).encode() + raw).hexdigest()
    return http.post("/im/feishu", content=raw, headers={
        "X-Lark-Request-Timestamp": stamp, "X-Lark-Request-Nonce": nonce, "X-Lark-Signature": signature,
        "content-type": "application/json"})


def test_feishu_card_is_sent_and_its_callback_approves_once(project: Path, server: FakeLLMServer,
                                                            robot: Robot) -> None:
    with client(project, host="198.51.100.7") as http:  # a platform's callback comes from outside
        http.headers["Authorization"] = "Bearer s3cret-token"
        run = start_waiting_run(http)
        deadline = time.time() + 10
        while not robot.received and time.time() < deadline:
            time.sleep(0.05)
        card = robot.received[0]["body"]["card"]
        buttons = card["elements"][1]["actions"]
        assert [b["text"]["content"] for b in buttons] == ["通过", "驳回", "打开审核页（可修改）"]
        assert buttons[2]["url"] == f"http://ops.example/runs/{run['id']}/approval"
        press = {"open_id": "ou_123", "action": {"value": buttons[0]["value"]}}
        del http.headers["Authorization"]  # the platform has no token: its signature is what counts
        forged = feishu_post(http, press, key="not-the-key")
        assert forged.status_code == 401
        http.headers["Authorization"] = "Bearer s3cret-token"
        assert http.get(f"/api/runs/{run['id']}").json()["status"] == "waiting"  # the forgery changed nothing
        del http.headers["Authorization"]
        first = feishu_post(http, press)
        assert first.status_code == 200 and first.json()["card"]["data"]["header"]["template"] == "green"
        again = feishu_post(http, press)
        assert again.status_code == 200 and "已通过" in again.json()["toast"]["content"]
        http.headers["Authorization"] = "Bearer s3cret-token"
        done = wait_for(http, run["id"], "done")
        assert [(a["action"], a["by"]) for a in done["approvals"]] == [("approve", "feishu:ou_123")]
        deadline = time.time() + 10
        while len(robot.received) < 2 and time.time() < deadline:
            time.sleep(0.05)
        assert "完成" in json.dumps(robot.received[-1]["body"], ensure_ascii=False)  # the completion notice


_ding_calls = itertools.count()


def _ding_headers(secret: str = DING_SECRET, age: float = 0) -> dict[str, str]:
    """A callback's headers as DingTalk signs each one: its own millisecond timestamp."""
    stamp = str(int((time.time() - age) * 1000) - next(_ding_calls))
    sign = base64.b64encode(hmac.new(secret.encode(), f"{stamp}\n{secret}".encode(), hashlib.sha256).digest())
    return {"timestamp": stamp, "sign": sign.decode()}


def test_dingtalk_callback_rejects_with_a_valid_signature_only(project: Path, server: FakeLLMServer) -> None:
    with client(project) as http:
        run = start_waiting_run(http)
        pending = run["pending"]
        key = button_key("reject", run["id"], pending["step"], pending["visit"], channel="ding",
                         secret=card_secret(load_project()))
        message = {"msgtype": "text", "text": {"content": key}, "senderStaffId": "manager01"}
        assert http.post("/im/dingtalk", json=message, headers=_ding_headers("wrong")).status_code == 401
        assert http.get(f"/api/runs/{run['id']}").json()["status"] == "waiting"
        first = http.post("/im/dingtalk", json=message, headers=_ding_headers())
        assert first.status_code == 200 and first.json()["decided"] == "reject"
        second = http.post("/im/dingtalk", json=message, headers=_ding_headers())
        assert second.json()["repeated"] is True
        # headers captured from a callback, replayed with another body (another decision, another name): refused
        captured = _ding_headers()
        approve = button_key("approve", run["id"], pending["step"], pending["visit"], channel="ding",
                             secret=card_secret(load_project()))
        assert http.post("/im/dingtalk", json={"text": {"content": approve}}, headers=captured).status_code == 200
        swapped = {"text": {"content": key}, "senderStaffId": "boss"}
        replay = http.post("/im/dingtalk", json=swapped, headers=captured)
        assert replay.status_code == 409 and "replayed" in replay.text
        again = wait_for(http, run["id"], "waiting")  # on_reject: the themes were redone, a new draft waits
        assert again["pending"]["visit"] == 2
        assert [a["action"] for a in again["approvals"]] == ["reject"]


def test_a_card_decides_only_from_its_own_channel_conversation_and_approvers(project: Path,
                                                                             server: FakeLLMServer) -> None:
    """DingTalk's signature does not cover the body, so the body's claims are checked against the card's channel:
    the button key names the channel, the channel names its group (`chat_id`) and who may decide (`approvers`)."""
    with (project / "playbook.toml").open("a", encoding="utf-8") as fh:
        fh.write('[notify.channels.ding_ops]\nplatform = "dingtalk"\nurl_env = "DING_WEBHOOK"\n'
                 'chat_id = "cid-ops"\napprovers = ["manager01", "dingtalk:lead02"]\n')
    with client(project) as http:
        run = start_waiting_run(http)
        pending, secret = run["pending"], card_secret(load_project())
        key = button_key("approve", run["id"], pending["step"], pending["visit"], channel="ding_ops", secret=secret)

        def press(body: dict[str, Any], platform: str = "dingtalk") -> str:
            if platform == "feishu":
                return str(feishu_post(http, body).json()["toast"]["content"])
            answer = http.post("/im/dingtalk", json=body, headers=_ding_headers())
            assert answer.status_code == 200
            return str(answer.json()["text"]["content"])

        feishu_key = button_key("approve", run["id"], pending["step"], pending["visit"], channel="ops",
                                secret=secret)
        assert "已失效" in press({"text": {"content": feishu_key}, "conversationId": "cid-ops",
                                  "senderStaffId": "manager01"})  # a Feishu card's key through DingTalk
        assert "已失效" in press({"open_id": "manager01", "open_chat_id": "cid-ops",
                                  "action": {"value": {"key": key}}}, platform="feishu")
        forwarded = press({"text": {"content": key}, "conversationId": "cid-elsewhere", "senderStaffId": "manager01"})
        assert "转发" in forwarded
        outsider = press({"text": {"content": key}, "conversationId": "cid-ops", "senderStaffId": "intern07"})
        assert "intern07" in outsider and "审核人名单" in outsider and "approvers" in outsider
        body = f"approve|{run['id']}|{pending['step']}|{pending['visit']}"  # a card keyed before keys named channels
        legacy = f"{body}|{hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()[:24]}"
        assert "已失效" in press({"text": {"content": legacy}, "conversationId": "cid-ops",
                                  "senderStaffId": "manager01"})  # it belongs to the approval channel: Feishu
        assert http.get(f"/api/runs/{run['id']}").json()["status"] == "waiting"  # none of them decided
        assert "已通过" in press({"text": {"content": f" {key} "}, "conversationId": "cid-ops",
                                  "senderStaffId": "lead02"})
        done = wait_for(http, run["id"], "done")
        assert [(a["action"], a["by"]) for a in done["approvals"]] == [("approve", "dingtalk:lead02")]


def test_each_platform_has_its_own_replay_window(project: Path, server: FakeLLMServer) -> None:
    """DingTalk documents an hour; a Feishu card callback is answered within seconds, so ten minutes is stale."""
    with client(project) as http:
        run = start_waiting_run(http)
        pending = run["pending"]
        key = button_key("approve", run["id"], pending["step"], pending["visit"], channel="ops",
                         secret=card_secret(load_project()))
        assert feishu_post(http, {"open_id": "ou_1", "action": {"value": {"key": key}}}, age=600).status_code == 401
        ding = button_key("approve", run["id"], pending["step"], pending["visit"], channel="ding",
                          secret=card_secret(load_project()))
        answer = http.post("/im/dingtalk", json={"text": {"content": ding}}, headers=_ding_headers(age=1800))
        assert answer.status_code == 200 and answer.json()["decided"] == "approve"


def _wecom_encrypt(xml: str) -> str:
    """WeCom's message encryption, written here from the platform's description, not from our module."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = base64.b64decode(WECOM_AES + "=")
    body = os.urandom(16) + struct.pack(">I", len(xml.encode())) + xml.encode() + b"corp-id"
    pad = 32 - len(body) % 32
    body += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(body) + encryptor.finalize()).decode()


def test_wecom_callback_decrypts_verifies_and_approves(project: Path, server: FakeLLMServer) -> None:
    with client(project) as http:
        run = start_waiting_run(http)
        key = button_key("approve", run["id"], "review", 1, channel="wecom", secret=card_secret(load_project()))
        encrypted = _wecom_encrypt(f"<xml><FromUserName>zhangsan</FromUserName><EventKey>{key}</EventKey></xml>")
        stamp, nonce = str(int(time.time())), "123"
        params = {"msg_signature": wecom_signature(WECOM_TOKEN, stamp, nonce, encrypted), "timestamp": stamp,
                  "nonce": nonce}
        body = f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
        bad = http.post("/im/wecom", params={**params, "msg_signature": "0" * 40}, content=body)
        assert bad.status_code == 401
        assert http.post("/im/wecom", params=params, content=body).text == "success"
        done = wait_for(http, run["id"], "done")
        assert [(a["action"], a["by"]) for a in done["approvals"]] == [("approve", "wecom:zhangsan")]
        echo = _wecom_encrypt("hello")
        check = http.get("/im/wecom", params={"msg_signature": wecom_signature(WECOM_TOKEN, stamp, nonce, echo),
                                              "timestamp": stamp, "nonce": nonce, "echostr": echo})
        assert check.text == "hello"


def test_api_decision_is_idempotent_per_step_and_visit(project: Path, server: FakeLLMServer) -> None:
    with client(project) as http:
        run = start_waiting_run(http)
        decision = {"action": "approve", "by": "api-user", "step": "review", "visit": 1,
                    "edits": {"summary": "改写后的总结"}}
        first = http.post(f"/api/runs/{run['id']}/decision", json=decision)
        assert first.status_code == 202 and first.json()["changes"][0]["path"] == "summary"
        assert http.post(f"/api/runs/{run['id']}/decision", json=decision).status_code == 200  # repeated
        done = wait_for(http, run["id"], "done")
        assert done["outputs"]["summary"] == "改写后的总结" and len(done["approvals"]) == 1
        assert http.post(f"/api/runs/{run['id']}/decision", json={"action": "approve"}).status_code == 409
        assert http.get("/api/runs/nope").status_code == 404


def test_service_hooks_are_plain_hooks(project: Path) -> None:
    service = Service(load_project(), hooks=[ApprovalCards(load_project())])
    try:
        assert service.runs() == []
    finally:
        service.close()


def test_feishu_app_sends_the_card_through_the_messages_api(project: Path, server: FakeLLMServer,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    with Robot() as feishu_api:
        text = (project / "playbook.toml").read_text(encoding="utf-8")
        text = text.replace('approval_channel = "ops"', 'approval_channel = "ops_app"')
        text += (f'[notify.channels.ops_app]\nplatform = "feishu_app"\napi_base = "{feishu_api.url[:-5]}"\n'
                 'app_id_env = "FEISHU_APP_ID"\napp_secret_env = "FEISHU_APP_SECRET"\nchat_id = "oc_ops"\n')
        (project / "playbook.toml").write_text(text, encoding="utf-8")
        monkeypatch.setenv("FEISHU_APP_ID", "cli_a1")
        monkeypatch.setenv("FEISHU_APP_SECRET", "app-secret")
        with client(project) as http:
            run = start_waiting_run(http)
            deadline = time.time() + 10
            while len(feishu_api.received) < 2 and time.time() < deadline:
                time.sleep(0.05)
    token, message = feishu_api.received
    assert token["path"] == "/open-apis/auth/v3/tenant_access_token/internal"
    assert token["body"] == {"app_id": "cli_a1", "app_secret": "app-secret"}
    assert message["path"] == "/open-apis/im/v1/messages?receive_id_type=chat_id"
    assert message["auth"] == "Bearer t-42" and message["body"]["receive_id"] == "oc_ops"
    card = json.loads(message["body"]["content"])
    keys = [b.get("value", {}).get("key") for b in card["elements"][1]["actions"]]
    secret = card_secret(load_project())
    assert keys[:2] == [button_key(a, run["id"], "review", 1, channel="ops_app", secret=secret)
                        for a in ("approve", "reject")]


def test_cli_runs_send_the_card_and_the_notice_too(project: Path, server: FakeLLMServer, robot: Robot) -> None:
    from tests.conftest import cli

    waiting = cli("run", "playbooks/feedback_digest.yaml", "-i", f"comments={REVIEWS}", "-i", "limit=20",
                  cwd=project)
    assert waiting.returncode == 3, waiting.stderr
    assert len(robot.received) == 1 and robot.received[0]["body"]["msg_type"] == "interactive"
    run_id = waiting.stdout.split("playbook approve ")[1].split()[0]
    key = button_key("approve", run_id, "review", 1, channel="ops", secret=card_secret(load_project()))
    assert key in json.dumps(robot.received[0]["body"])
    assert cli("approve", run_id, cwd=project).returncode == 0
    assert len(robot.received) == 2 and "完成" in json.dumps(robot.received[1]["body"], ensure_ascii=False)


def test_start_form_takes_an_uploaded_file(project: Path, server: FakeLLMServer) -> None:
    table = "id,text\n1,物流太慢了，等了一周\n2,客服态度很好\n3,包装破损\n".encode("gbk")  # as Excel in China saves
    with client(project) as http:
        http.get("/start/feedback_digest")
        started = http.post("/start/feedback_digest",
                            data={"csrf": http.cookies["playbook_csrf"], "in_review": "true", "in_comments": ""},
                            files={"upload_comments": ("../../评论 导出.csv", table, "text/csv")})
        assert started.status_code == 303, started.text
        run = wait_for(http, started.headers["location"].rsplit("/", 1)[-1], "waiting")
    saved = Path(run["inputs"]["comments"])
    assert saved.parent == project / ".playbook" / "uploads" and saved.name.endswith("评论_导出.csv")
    assert saved.read_bytes() == table


def test_a_dns_rebinding_host_and_every_proxy_header_are_not_local(project: Path) -> None:
    app = create_app(load_project())
    with TestClient(app, client=("127.0.0.1", 50000), base_url="http://evil.example:8600") as rebound:
        page = rebound.post("/api/runs", json={"playbook": "feedback_digest", "inputs": {}},
                            headers={"origin": "http://evil.example:8600"})
        assert page.status_code == 421 and "does not answer for host 'evil.example'" in page.text
    with TestClient(app, client=("127.0.0.1", 50000), base_url="http://127.0.0.1:8600") as http:
        assert http.get("/").status_code == 200
        for header in ("X-Forwarded-For", "x_forwarded_host", "Via", "X-Real-IP", "CF-Connecting-IP", "Forwarded"):
            refused = http.get("/", headers={header: "203.0.113.9"})
            assert refused.status_code == 401, (header, refused.status_code)  # a token is configured


def test_an_upload_name_past_the_filesystem_limit_is_shortened(project: Path, server: FakeLLMServer) -> None:
    table = "id,text\n1,物流太慢了\n2,客服很好\n".encode()
    long_name = "双十一活动用户评论导出" * 30 + ".csv"  # 990 bytes of name
    with client(project) as http:
        http.get("/start/feedback_digest")
        started = http.post("/start/feedback_digest",
                            data={"csrf": http.cookies["playbook_csrf"], "in_review": "true", "in_comments": ""},
                            files={"upload_comments": (long_name, table, "text/csv")})
        assert started.status_code == 303, started.text
        run = wait_for(http, started.headers["location"].rsplit("/", 1)[-1], "waiting")
    saved = Path(run["inputs"]["comments"])
    assert saved.read_bytes() == table and saved.suffix == ".csv" and len(saved.name.encode()) < 255


def test_captured_or_stale_callbacks_change_nothing_and_junk_gets_401(project: Path, server: FakeLLMServer) -> None:
    with client(project) as http:
        run = start_waiting_run(http)
        pending = run["pending"]
        unsigned = f"approve|{run['id']}|{pending['step']}|{pending['visit']}"  # the key without its tag
        other = button_key("approve", "another-run", pending["step"], 1, channel="ding",
                           secret=card_secret(load_project()))
        forged = f"{other.rsplit('|', 1)[0].replace('another-run', run['id'])}|{other.rsplit('|', 1)[1]}"
        for key in (unsigned, forged):  # a valid DingTalk signature, a key this server never issued
            answer = http.post("/im/dingtalk", json={"text": {"content": key}}, headers=_ding_headers())
            assert answer.status_code == 200 and "已失效" in answer.text
        key = button_key("approve", run["id"], pending["step"], pending["visit"], channel="ding",
                         secret=card_secret(load_project()))
        stale = http.post("/im/dingtalk", json={"text": {"content": key}}, headers=_ding_headers(age=3 * 3600))
        assert stale.status_code == 401
        press = {"open_id": "ou_1", "action": {"value": {"key": key}}}
        assert feishu_post(http, press, age=2 * 3600).status_code == 401  # a stale Feishu timestamp
        for junk in (b"\xff\xfe not json", b"[1, 2", b""):
            assert feishu_post(http, junk, key="wrong").status_code == 401
            assert feishu_post(http, junk).status_code == 200  # signed junk: answered, nothing decided
            assert http.post("/im/wecom", params={"timestamp": str(int(time.time())), "nonce": "1",
                                                  "msg_signature": "0"}, content=junk).status_code == 401
        assert http.get(f"/api/runs/{run['id']}").json()["status"] == "waiting"  # nothing was applied


def test_an_upload_past_max_upload_mb_gets_413_and_leaves_nothing(project: Path) -> None:
    """A body over `[server] max_upload_mb` is refused with 413 — by its Content-Length before a byte is read, or
    as its bytes pass the limit when it has none — and no upload file is left behind; one under it is saved whole."""

    toml = project / "playbook.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace("[server]\n", "[server]\nmax_upload_mb = 2\n", 1),
                    encoding="utf-8")
    big = b"id,text\n" + b"1,x\n" * 800_000  # 3.2 MB
    with client(project) as http:
        http.get("/start/feedback_digest")
        refused = http.post("/start/feedback_digest", data={"csrf": http.cookies["playbook_csrf"]},
                            files={"upload_comments": ("big.csv", big, "text/csv")})
        assert refused.status_code == 413 and "max_upload_mb" in refused.text
    uploads = project / ".playbook" / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []

    # no Content-Length (a chunked upload): counted as it arrives, through every middleware of the real app
    with client(project) as http:
        http.get("/start/feedback_digest")
        boundary = "b0undary"
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n'
                f'{http.cookies["playbook_csrf"]}\r\n--{boundary}\r\nContent-Disposition: form-data; '
                'name="upload_comments"; filename="big.csv"\r\nContent-Type: text/csv\r\n\r\n').encode()
        chunked = http.post("/start/feedback_digest", content=iter([head, big, f"\r\n--{boundary}--\r\n".encode()]),
                            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert chunked.status_code == 413 and "max_upload_mb" in chunked.text
        assert not uploads.exists() or list(uploads.iterdir()) == []
