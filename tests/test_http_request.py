"""http.request against a loopback API that wants a bearer token and answers 201, 429 + Retry-After and 500."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import cli, run_playbook, write_playbook

pytestmark = pytest.mark.usefixtures("english")  # these tests check what the messages say, in English

TOKEN = "tok-5d1e9a7c3b"


class Api:
    """Records every request; /render answers 201, /busy 429 once (Retry-After: 1), /broken 500, /hop redirects."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.busy_left = 1
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                api.handle(self)

            def do_POST(self) -> None:
                api.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("content-length") or 0)
        body = h.rfile.read(length).decode() if length else ""
        self.requests.append({"path": h.path, "method": h.command, "auth": h.headers.get("authorization"),
                              "body": body, "at": time.monotonic()})
        if h.path.startswith("/hop"):
            return self.send(h, 307, {}, {"Location": h.path.split("to=", 1)[1]})
        if h.path.startswith("/broken"):
            return self.send(h, 500, {"error": "database on fire"})
        if h.headers.get("authorization") != f"Bearer {TOKEN}":
            return self.send(h, 401, {"error": "bad token"})
        if h.path.startswith("/render"):
            return self.send(h, 201, {"id": "img-1", "got": json.loads(body), "query": h.path.split("?")[-1]})
        if h.path.startswith("/busy"):
            if self.busy_left:
                self.busy_left -= 1
                return self.send(h, 429, {"error": "slow down"}, {"Retry-After": "1"})
            return self.send(h, 200, {"ok": True})
        return self.send(h, 404, {"error": "no such API"})

    @staticmethod
    def send(h: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.end_headers()
        h.wfile.write(data)


@pytest.fixture
def api() -> Iterator[Api]:
    server = Api()
    threading.Thread(target=server.httpd.serve_forever, daemon=True).start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


CALLS = """
name: api_calls
secrets: [RENDER_TOKEN]
inputs: {base: {type: string}}
steps:
  - id: render
    tool: http.request
    with:
      method: POST
      url: ${{ inputs.base }}/render
      headers: {Authorization: "Bearer ${{ secrets.RENDER_TOKEN }}"}
      query: {size: 1080}
      json: {title: 双十一海报, colors: [红, 金]}
  - id: busy
    tool: http.request
    with: {url: "${{ inputs.base }}/busy", headers: {Authorization: "Bearer ${{ secrets.RENDER_TOKEN }}"}}
  - id: broken_ok
    tool: http.request
    with: {url: "${{ inputs.base }}/broken", retries: 0, ok_status: [500],
           headers: {Authorization: "Bearer ${{ secrets.RENDER_TOKEN }}"}}
outputs:
  status: ${{ steps.render.status_code }}
  image: ${{ steps.render.data.id }}
  sent: ${{ steps.render.data.got }}
  query: ${{ steps.render.data.query }}
  busy: ${{ steps.busy.data.ok }}
  broken_status: ${{ steps.broken_ok.status_code }}
  broken_error: ${{ steps.broken_ok.data.error }}
"""


def test_post_with_a_bearer_token_retry_after_and_ok_status(project_dir: Path, api: Api,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (project_dir / "playbook.toml").write_text('[web]\ndelay = 0\nretries = 3\nallow_private = ["127.0.0.1"]\n',
                                               encoding="utf-8")
    monkeypatch.setenv("RENDER_TOKEN", TOKEN)
    done = run_playbook(write_playbook(project_dir, CALLS), {"base": api.base})
    assert done.status == "done", done.error
    assert done.outputs == {"status": 201, "image": "img-1", "sent": {"title": "双十一海报", "colors": ["红", "金"]},
                            "query": "size=1080", "busy": True, "broken_status": 500,
                            "broken_error": "database on fire"}
    busy = [r for r in api.requests if r["path"] == "/busy"]
    assert len(busy) == 2 and busy[1]["at"] - busy[0]["at"] >= 1.0  # waited as Retry-After asked
    events = (Path(done.run_dir) / "events.jsonl").read_text(encoding="utf-8")
    assert TOKEN not in events and "Bearer ***" in events


def test_a_5xx_after_its_retries_and_a_401_fail_the_step_with_status_and_url(project_dir: Path, api: Api,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (project_dir / "playbook.toml").write_text("[web]\ndelay = 0\nallow_private = [\"127.0.0.1\"]\n", encoding="utf-8")
    monkeypatch.setenv("RENDER_TOKEN", "wrong")
    path = write_playbook(project_dir, """
name: failing
secrets: [RENDER_TOKEN]
inputs: {base: {type: string}}
steps:
  - id: denied
    tool: http.request
    with: {url: "${{ inputs.base }}/render", method: POST, json: {},
           headers: {Authorization: "Bearer ${{ secrets.RENDER_TOKEN }}"}}
    on_error: skip
  - id: broken
    tool: http.request
    with: {url: "${{ inputs.base }}/broken", retries: 2}
outputs: {denied: "${{ steps.denied.error.status }}"}
""")
    done = cli("run", str(path), "-i", f"base={api.base}", cwd=project_dir)
    assert done.returncode == 1
    assert f"'{api.base}/broken' answered HTTP 500 Internal Server Error: {{\"error\": \"database on fire\"}}" \
        in done.stderr
    assert len([r for r in api.requests if r["path"] == "/broken"]) == 3  # one try and two retries
    assert len([r for r in api.requests if r["path"] == "/render"]) == 1  # a 401 is not retried
    shown = cli("runs", "show", done.stderr.split("× failed ")[1].split("：")[0], cwd=project_dir)
    assert "HTTP 401" in shown.stdout and "wrong" not in shown.stdout


def test_a_redirect_to_a_host_not_allowed_is_refused_before_it_is_followed(project_dir: Path, api: Api) -> None:
    (project_dir / "playbook.toml").write_text('[web]\ndelay = 0\nallow_hosts = ["127.0.0.1"]\n'
                                               'allow_private = ["127.0.0.1"]\n', encoding="utf-8")
    port = api.base.rsplit(":", 1)[1]
    path = write_playbook(project_dir, """
name: hop
inputs: {url: {type: string}}
steps:
  - {id: call, tool: http.request, with: {url: "${{ inputs.url }}", method: POST, json: {a: 1}}}
""")
    done = cli("run", str(path), "-i", f"url={api.base}/hop?to=http://localhost:{port}/render", cwd=project_dir)
    assert done.returncode == 1
    assert "host 'localhost' is not allowed" in done.stderr
    assert [r["path"] for r in api.requests] == [f"/hop?to=http://localhost:{port}/render"]


def test_an_api_that_takes_the_request_and_never_answers_costs_two_waits(tmp_path: Path) -> None:
    import asyncio
    import socket

    from runner.testing import call_tool

    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        with pytest.raises(Exception) as caught:
            asyncio.run(call_tool("http.request", {"url": f"http://127.0.0.1:{port}/api", "timeout": 0.3,
                                                   "retries": 5}, run_dir=tmp_path))
    assert "no answer (waited 0.3 s) (tried 2 times)" in str(caught.value), caught.value
