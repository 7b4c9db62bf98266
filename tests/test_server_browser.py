"""A real browser (playwright + the system Chromium) approves a waiting feedback_digest run on the page."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from html import escape
from pathlib import Path

import httpx
import openpyxl
import pytest

from runner.testing import FakeLLMServer
from tests.conftest import API_HEADERS, ROOT, served_project, wait_status

CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "test-artifacts" / "screenshots"  # what the pages and the workbook look like, after a test run


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
    SHOTS.mkdir(parents=True, exist_ok=True)
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
        page.screenshot(path=str(SHOTS / "approval.png"), full_page=True)
        page.click("#approve")
        page.wait_for_url(f"{served}/runs/{run_id}")
        deadline = time.time() + 60
        while "已完成" not in page.inner_text("h2") and time.time() < deadline:
            page.wait_for_timeout(500)
            page.reload()
        assert "已完成" in page.inner_text("h2")
        audit = page.inner_text("#approvals")
        assert "运营小李" in audit and "物流太慢" in audit
        page.screenshot(path=str(SHOTS / "run.png"), full_page=True)
        headers = page.locator("th").all_inner_texts()  # the outputs' tables are headed by their titles
        assert {"主题", "评论数", "原文引用", "行动建议", "需求", "证据", "优先级"} <= set(headers), headers
        assert not {"name", "count", "quotes", "action", "need", "evidence"} & set(headers)
        assert "<dt>评论文件</dt>" in page.content()  # an input under its description's label
        workbook = Path(wait_status(served, run_id, "done")["outputs"]["workbook"])  # type: ignore[index]
        sheet = openpyxl.load_workbook(workbook, read_only=True)["标注"]
        rows = [[escape("" if v is None else str(v)) for v in row]
                for row in sheet.iter_rows(max_row=15, values_only=True)]
        table = "<tr>" + "".join(f"<th>{h}</th>" for h in rows[0]) + "</tr>" + "".join(
            "<tr>" + "".join(f"<td>{v}</td>" for v in r) + "</tr>" for r in rows[1:])
        page.set_content("<meta charset=utf-8><style>td,th{border:1px solid #ccc;padding:2px 6px;font:13px sans-serif}"
                         f"</style><h3>feedback_labelled.xlsx › 标注</h3><table>{table}</table>")
        page.screenshot(path=str(SHOTS / "workbook_标注.png"), full_page=True)
        assert page.locator("th").all_inner_texts() == ["编号", "评论", "重复数", "情感", "话题", "好案例"]
        browser.close()
    for shot in ("approval.png", "run.png", "workbook_标注.png"):  # kept in the test artifacts for a person to look at
        assert (SHOTS / shot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    done = wait_status(served, run_id, "done")
    assert done["outputs"]["themes"][0]["name"] == "物流太慢"  # type: ignore[index]
    assert done["outputs"]["summary"] == "物流是最大的问题：先换快递"  # type: ignore[index]
    (record,) = done["approvals"]  # type: ignore[misc]
    assert {"path": "themes[0].name", "before": themes[0]["name"], "after": "物流太慢"} in record["diff"]
    report = Path(done["outputs"]["report"]).read_text(encoding="utf-8")  # type: ignore[index]
    assert "物流太慢" in report
