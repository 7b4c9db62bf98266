"""web.scrape with playwright and the system Chromium, against pages served on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from runner.testing import call_tool, serve_directory
from tests.conftest import allow_loopback, run_playbook, write_playbook
from tools.scrape import BROWSER

pytestmark = pytest.mark.usefixtures("english")  # these tests check what the messages say, in English

PAGES = Path(__file__).parent / "fixtures" / "scrape"


def test_js_list_with_load_more_returns_every_item(tmp_path: Path) -> None:
    with serve_directory(PAGES) as base:
        out = asyncio.run(call_tool("web.scrape", {
            "url": f"{base}/list.html", "wait_for": "li.item", "click_more": "#more", "items": "li.item",
            "fields": {"name": "a", "link": "a@href", "price": ".price"}, "screenshot": "list.png"},
            run_dir=tmp_path))
    assert out.count == 35 and out.clicks == 3 and out.title == "活动商品列表"
    assert [r["name"] for r in out.rows] == [f"商品 {i}" for i in range(35)]
    assert out.rows[7]["link"] == f"{base}/goods/7" and out.rows[7]["price"] == "16.9"
    assert Path(out.screenshot).read_bytes()[:4] == b"\x89PNG"


def test_fifty_pages_in_a_map_launch_the_browser_once(project_dir: Path) -> None:
    before = BROWSER.launches
    allow_loopback(project_dir)
    with serve_directory(PAGES) as base:
        path = write_playbook(project_dir, f"""
name: many_pages
steps:
  - id: pages
    map: "${{{{ range(50) | list }}}}"
    concurrency: 4
    tool: web.scrape
    with: {{url: "{base}/list.html?page=${{{{ item }}}}", wait_for: li.item, items: li.item}}
  - id: after
    tool: web.scrape
    with: {{url: "{base}/list.html", wait_for: li.item, items: li.item}}
outputs: {{counts: "${{{{ steps.pages.output | map(attribute='count') | list }}}}"}}
""")
        outcome = run_playbook(path)
    assert outcome.status == "done", outcome.error
    assert outcome.outputs["counts"] == [10] * 50
    assert BROWSER.launches - before == 1


def test_bad_selector_names_step_and_selector(project_dir: Path) -> None:
    with serve_directory(PAGES) as base:
        path = write_playbook(project_dir, f"""
name: bad
steps:
  - {{id: grab, tool: web.scrape, with: {{url: "{base}/list.html", items: "li[[", timeout: 5}}}}
""")
        outcome = run_playbook(path)
    assert outcome.status == "failed"
    assert outcome.error.startswith("step 'grab': web.scrape: argument 'items': bad selector 'li[['")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "javascript:alert(1)"])
def test_only_http_urls(tmp_path: Path, url: str) -> None:
    with pytest.raises(ValueError, match="not an http"):
        asyncio.run(call_tool("web.scrape", {"url": url}, run_dir=tmp_path))


def test_login_saves_state_that_later_scrapes_reuse(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    allow_loopback(project_dir)
    monkeypatch.setenv("SITE_USER", "运营小王")
    monkeypatch.setenv("SITE_PASSWORD", "s3cret")
    with serve_directory(PAGES) as base:
        login = write_playbook(project_dir, f"""
name: login_once
secrets: [SITE_USER, SITE_PASSWORD]
steps:
  - id: login
    tool: web.login
    with:
      site: demo
      url: {base}/login.html
      fill: {{"#user": "${{{{ secrets.SITE_USER }}}}", "#password": "${{{{ secrets.SITE_PASSWORD }}}}"}}
      submit: "#go"
      success: h1.welcome
""", name="login.yaml")
        scrape = write_playbook(project_dir, f"""
name: members
inputs: {{site: {{type: string, default: demo}}}}
steps:
  - {{id: grab, tool: web.scrape, with: {{url: "{base}/members.html", login: "${{{{ inputs.site }}}}",
                                          items: li.stat, timeout: 5}}}}
outputs: {{stats: "${{{{ steps.grab.rows | map(attribute='text') | list }}}}"}}
""", name="members.yaml")
        logged_in = run_playbook(login)
        assert logged_in.status == "done", logged_in.error
        saved = project_dir / ".playbook" / "auth" / "demo.json"
        assert saved.exists() and "s3cret" not in saved.read_text(encoding="utf-8")
        events = (Path(logged_in.run_dir) / "events.jsonl").read_text(encoding="utf-8")
        assert '"tool": "web.login"' in events and "s3cret" not in events and "***" in events  # args, redacted
        outcome = run_playbook(scrape)  # a later run, a new browser context, the saved state
        missing = run_playbook(scrape, {"site": "other"})
    assert outcome.status == "done", outcome.error
    assert outcome.outputs["stats"] == ["新增会员 120", "续费 36", "流失 9"]
    assert missing.status == "failed"
    assert "argument 'login': no login state saved for 'other'" in (missing.error or "")


def test_failed_login_names_the_success_selector(tmp_path: Path) -> None:
    with serve_directory(PAGES) as base, pytest.raises(ValueError, match=r"'h1\.welcome' did not appear"):
        asyncio.run(call_tool("web.login", {
            "site": "demo", "url": f"{base}/login.html", "fill": {"#user": "x", "#password": "wrong"},
            "submit": "#go", "success": "h1.welcome", "timeout": 2}, run_dir=tmp_path))
    assert not (tmp_path / ".playbook" / "auth" / "demo.json").exists()


@pytest.mark.parametrize("site", ["../../etc/x", ".hidden", "a/b"])
def test_login_site_name_cannot_pick_a_path(tmp_path: Path, site: str) -> None:
    with pytest.raises(ValueError, match="site name"):
        asyncio.run(call_tool("web.scrape", {"url": "http://127.0.0.1:1/", "login": site}, run_dir=tmp_path))
