"""notify.webhook against a loopback robot that checks each platform's payload and DingTalk's signature."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from runner.config import ProjectFile
from runner.testing import call_tool

pytestmark = pytest.mark.usefixtures("english")  # these tests check what the messages say, in English

SECRET = "SEC0123456789abcdef"


def dingtalk_ok(query: dict[str, list[str]]) -> bool:
    """The check DingTalk's server does: HMAC-SHA256 of 'timestamp\\nsecret', base64, within an hour."""
    stamp, sign = query.get("timestamp", [""])[0], query.get("sign", [""])[0]
    expected = base64.b64encode(hmac.new(SECRET.encode(), f"{stamp}\n{SECRET}".encode(),
                                         hashlib.sha256).digest()).decode()
    return bool(stamp) and abs(time.time() * 1000 - int(stamp)) < 3_600_000 and sign == expected


SHAPES = {
    "feishu": lambda b: b["msg_type"] == "interactive" and b["card"]["elements"][0]["tag"] == "markdown",
    "dingtalk": lambda b: b["msgtype"] == "markdown" and "### 日报" in b["markdown"]["text"],
    "wecom": lambda b: b["msgtype"] == "markdown" and b["markdown"]["content"].startswith("**日报**"),
    "slack": lambda b: b["blocks"][1]["text"]["type"] == "mrkdwn" and b["text"] == "日报",
}


@pytest.fixture
def robot() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            platform = parts.path.strip("/")
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            ok = SHAPES[platform](body)
            if platform == "dingtalk":
                ok = ok and dingtalk_ok(parse_qs(parts.query))
            received.append({"platform": platform, "body": body, "ok": ok})
            answer = b"ok" if platform == "slack" else json.dumps(
                {"errcode": 0 if ok else 310000, "errmsg": "ok" if ok else "sign not match"}).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", received
    httpd.shutdown()


def send(tmp_path: Path, **args: Any) -> Any:
    settings = ProjectFile(server={"base_url": "http://playbook.local"})
    return asyncio.run(call_tool("notify.webhook", {"title": "日报", "content": "**DAU** 12,345 (+3.2%)", **args},
                                 run_dir=tmp_path, settings=settings))


@pytest.mark.parametrize("platform", ["feishu", "dingtalk", "wecom", "slack"])
def test_each_platform_payload_is_accepted(platform: str, robot: Any, tmp_path: Path) -> None:
    base, received = robot
    send(tmp_path, platform=platform, url=f"{base}/{platform}", secret=SECRET if platform == "dingtalk" else None)
    assert received[-1]["ok"], received[-1]
    assert "http://playbook.local/runs/test" in json.dumps(received[-1]["body"], ensure_ascii=False)


def test_wrong_dingtalk_secret_is_reported(robot: Any, tmp_path: Path) -> None:
    base, _ = robot
    with pytest.raises(ValueError, match=r"dingtalk webhook refused the message.*sign not match"):
        send(tmp_path, platform="dingtalk", url=f"{base}/dingtalk", secret="wrong")


def test_channel_from_project_config_and_env(robot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base, received = robot
    monkeypatch.setenv("OPS_DING_URL", f"{base}/dingtalk")
    monkeypatch.setenv("OPS_DING_SECRET", SECRET)
    settings = ProjectFile(notify={"channels": {"ops": {"platform": "dingtalk", "url_env": "OPS_DING_URL",
                                                        "secret_env": "OPS_DING_SECRET"}}})
    asyncio.run(call_tool("notify.webhook", {"channel": "ops", "title": "日报", "content": "ok"},
                          run_dir=tmp_path, settings=settings))
    assert received[-1]["ok"]
    with pytest.raises(ValueError, match="no channel 'opz'"):
        asyncio.run(call_tool("notify.webhook", {"channel": "opz", "title": "t", "content": "c"},
                              run_dir=tmp_path, settings=settings))
