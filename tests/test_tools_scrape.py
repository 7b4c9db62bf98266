"""web.scrape with playwright and the system Chromium, against pages served on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from runner.testing import call_tool, serve_directory
from tests.conftest import run_playbook, write_playbook
from tools.scrape import BROWSER

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
