"""Tools do not reach this machine, the local network or cloud metadata unless `[web] allow_private` opens them:
checked on the address connected to, after DNS, on every redirect hop and every request a page makes."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from runner.testing.loopback import LoopbackHTTPServer
from tests.conftest import REVIEWED, cli, served_project, wait_status, write_playbook

pytestmark = pytest.mark.usefixtures("english")  # these tests check what the messages say, in English

DECIDE = """
name: decider
inputs: {url: {type: string}}
steps:
  - id: decide
    tool: http.request
    with: {url: "${{ inputs.url }}", method: POST, json: {action: approve}}
outputs: {status: "${{ steps.decide.status_code }}"}
"""

FETCH = """
name: fetcher
inputs: {url: {type: string}}
steps:
  - {id: get, tool: TOOL, with: {url: "${{ inputs.url }}"}}
"""


@contextlib.contextmanager
def _page_server(address: str, pages: dict[str, tuple[int, dict[str, str], str]]) -> Iterator[tuple[str, list[str]]]:
    """A loopback server on `address` answering `pages` (path → status, headers, body); yields its base URL and the
    paths asked for."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            status, headers, body = pages.get(self.path, (404, {}, "no"))
            data = body.encode("utf-8")
            self.send_response(status)
            for name, value in {"Content-Type": "text/html; charset=utf-8", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    httpd = LoopbackHTTPServer((address, 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://{address}:{httpd.server_address[1]}", asked
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_playbook_cannot_approve_a_run_through_the_local_server(project_dir: Path) -> None:
    """The runner's own web server answers loopback clients: a playbook's http.request to it is refused before a
    connection is made, by name (localhost) or by address, and the run it aimed at keeps waiting."""
    write_playbook(project_dir, REVIEWED, "reviewed.yaml")
    decider = write_playbook(project_dir, DECIDE, "decider.yaml")
    with served_project(project_dir) as base:
        assert cli("run", "reviewed.yaml", "--run-id", "target", cwd=project_dir).returncode == 3
        port = base.rsplit(":", 1)[1]
        for url in (f"{base}/api/runs/target/decision", f"http://localhost:{port}/api/runs/target/decision",
                    f"http://[::ffff:127.0.0.1]:{port}/api/runs/target/decision"):
            done = cli("run", str(decider), "-i", f"url={url}", cwd=project_dir)
            assert done.returncode == 1 and "private address" in done.stderr and "allow_private" in done.stderr, \
                (url, done.stdout, done.stderr)
        assert wait_status(base, "target", "waiting")["status"] == "waiting"


def test_metadata_and_private_ranges_are_refused_and_allow_private_opens_what_is_named(project_dir: Path) -> None:
    fetcher = write_playbook(project_dir, FETCH.replace("TOOL", "web.fetch"))
    for url in ("http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/", "http://192.168.0.1/",
                "http://[fd00::1]/", "http://0.0.0.0:9/"):
        done = cli("run", str(fetcher), "-i", f"url={url}", cwd=project_dir)
        assert done.returncode == 1 and "private address" in done.stderr, (url, done.stderr)
    with _page_server("127.0.0.1", {"/": (200, {}, "<title>内网</title><p>内网页面</p>")}) as (base, asked):
        refused = cli("run", str(fetcher), "-i", f"url={base}/", cwd=project_dir)
        assert refused.returncode == 1 and asked == []
        with (project_dir / "playbook.toml").open("a", encoding="utf-8") as toml:
            toml.write('\n[web]\ndelay = 0\nallow_private = ["127.0.0.1/32"]\n')
        allowed = cli("run", str(fetcher), "-i", f"url={base}/", cwd=project_dir)
        assert allowed.returncode == 0 and asked == ["/"], allowed.stderr


def test_a_redirect_to_a_private_address_is_refused_at_the_hop(project_dir: Path) -> None:
    """An allowed address (here 127.0.0.2) that redirects to one that is not (127.0.0.1): the hop is refused, for
    http.request and web.fetch alike, and the private server never sees a request."""
    with (project_dir / "playbook.toml").open("a", encoding="utf-8") as toml:
        toml.write('\n[web]\ndelay = 0\nallow_private = ["127.0.0.2"]\n')
    with _page_server("127.0.0.1", {"/secret": (200, {}, "秘密")}) as (inside, asked_inside):
        port = inside.rsplit(":", 1)[1]
        with _page_server("127.0.0.2", {"/go": (302, {"Location": f"http://127.0.0.1:{port}/secret"}, "")}) \
                as (hop, asked_hop):
            for tool in ("http.request", "web.fetch"):
                path = write_playbook(project_dir, FETCH.replace("TOOL", tool), f"{tool}.yaml")
                done = cli("run", str(path), "-i", f"url={hop}/go", cwd=project_dir)
                assert done.returncode == 1 and "private address" in done.stderr, (tool, done.stderr)
            assert asked_hop == ["/go", "/go"] and asked_inside == []


def test_a_scraped_page_cannot_load_from_a_private_address(project_dir: Path) -> None:
    """web.scrape: the page (on an allowed address) embeds an image and a frame from a private one: the browser's
    requests for them are refused, the page itself is read."""
    with (project_dir / "playbook.toml").open("a", encoding="utf-8") as toml:
        toml.write('\n[web]\ndelay = 0\nallow_private = ["127.0.0.2"]\n')
    with _page_server("127.0.0.1", {"/pixel.png": (200, {}, "x"), "/frame": (200, {}, "内框")}) as (inside, asked):
        page = (f'<html><head><title>公开页面</title></head><body><h1>公开页面</h1><img src="{inside}/pixel.png">'
                f'<iframe src="{inside}/frame"></iframe></body></html>')
        with _page_server("127.0.0.2", {"/": (200, {}, page)}) as (outside, _):
            path = write_playbook(project_dir, """
name: scraper
inputs: {url: {type: string}}
steps:
  - {id: page, tool: web.scrape, with: {url: "${{ inputs.url }}", items: h1, fields: {heading: ""}}}
outputs: {title: "${{ steps.page.title }}", rows: "${{ steps.page.rows }}"}
""")
            done = cli("run", str(path), "-i", f"url={outside}/", cwd=project_dir)
            assert done.returncode == 0 and "公开页面" in done.stdout, done.stderr
    assert asked == []
