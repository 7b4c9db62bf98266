"""A real browser (playwright + the system Chromium) approves a waiting feedback_digest run on the page."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runner.testing import FakeLLMServer
from tests.conftest import API_HEADERS, ROOT, served_project, wait_status

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def served(project_dir: Path) -> Iterator[str]:
    with served_project(project_dir, "feedback_digest") as base:
        yield base


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (scripts/setup installs it)")
def test_edit_a_theme_in_the_browser_and_approve(served: str, server: FakeLLMServer) -> None:
    from playwright.sync_api import sync_playwright

    started = httpx.post(f"{served}/api/runs", json={"playbook": "feedback_digest", "inputs": {
        "comments": str(ROOT / "examples" / "reviews_zh.csv"), "limit": 40}},
        headers=API_HEADERS)
    run_id = started.json()["run_id"]
    waiting = wait_status(served, run_id, "waiting")
    themes = waiting["pending"]["draft"]["themes"]  # type: ignore[index]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page()
        page.goto(f"{served}/runs/{run_id}")
        assert "待审核" in page.inner_text("h2")
        page.click("#go-approve")
        page.wait_for_selector("#editor-themes")
        # a text field opens as text: no JSON error, no JSON switch, its form input holds the draft's text
        assert page.inner_text("#editor-summary .json-error") == ""
        assert not page.is_visible("#json-summary") and page.is_hidden("#edit_summary")
        summary = page.locator('#editor-summary [data-path="summary"]')
        assert summary.input_value() == waiting["pending"]["draft"]["summary"]  # type: ignore[index]
        summary.fill("物流是最大的问题：先换快递")
        page.check("#json-themes")  # a power user edits the JSON behind the form
        assert themes[0]["name"] in page.inner_text("#draft")  # the draft is rendered readably
        edited = json.loads(page.input_value("#edit_themes"))
        edited[0]["name"] = "物流太慢"
        page.fill("#edit_themes", json.dumps(edited, ensure_ascii=False, indent=2))
        page.fill("#by", "运营小李")
        page.click("#approve")
        page.wait_for_url(f"{served}/runs/{run_id}")
        deadline = time.time() + 60
        while "已完成" not in page.inner_text("h2") and time.time() < deadline:
            page.wait_for_timeout(500)
            page.reload()
        assert "已完成" in page.inner_text("h2")
        audit = page.inner_text("#approvals")
        assert "运营小李" in audit and "物流太慢" in audit
        browser.close()
    done = wait_status(served, run_id, "done")
    assert done["outputs"]["themes"][0]["name"] == "物流太慢"  # type: ignore[index]
    assert done["outputs"]["summary"] == "物流是最大的问题：先换快递"  # type: ignore[index]
    (record,) = done["approvals"]  # type: ignore[misc]
    assert {"path": "themes[0].name", "before": themes[0]["name"], "after": "物流太慢"} in record["diff"]
    report = Path(done["outputs"]["report"]).read_text(encoding="utf-8")  # type: ignore[index]
    assert "物流太慢" in report
