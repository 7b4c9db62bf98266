"""The approval page is a form built from the draft's schema: a real browser (system Chromium) edits
campaign_plan's budget table — adds a row, changes a number within its bounds, tries one outside them and sees
the error in place — approves, and finds the edit in the audit and in the workbook."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openpyxl import load_workbook

from tests.conftest import API_HEADERS, served_project, wait_status

CHROMIUM = "/usr/bin/chromium"
INPUTS = {"product": "轻记 App", "goal": "双十一拉新", "budget": 200000, "start": "2026-11-01", "end": "2026-11-15",
          "audience": "刚工作的年轻人", "personas": 2}


@pytest.fixture
def served(project_dir: Path) -> Iterator[str]:
    with served_project(project_dir, "campaign_plan") as base:
        yield base


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (scripts/setup installs it)")
def test_edit_the_budget_table_through_the_form(served: str, project_dir: Path) -> None:
    from playwright.sync_api import sync_playwright

    run_id = httpx.post(f"{served}/api/runs", json={"playbook": "campaign_plan", "inputs": INPUTS},
                        headers=API_HEADERS).json()["run_id"]
    waiting = wait_status(served, run_id, "waiting")
    channels = waiting["pending"]["draft"]["channels"]  # type: ignore[index]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{served}/runs/{run_id}/approval")
        editor = page.locator("#editor-channels")
        assert "渠道与预算" in editor.locator("h3").inner_text()  # the schema's title, not `channels`
        assert not page.locator("#edit_channels").is_visible()  # the JSON is behind the switch
        rows = editor.locator(".list > .row")
        assert rows.count() == len(channels)
        assert editor.locator(".prop .name").first.inner_text() == "渠道"

        editor.locator("button.add").click()  # a new row, filled in field by field
        assert rows.count() == len(channels) + 1
        new_row = rows.nth(len(channels))
        new_row.locator("[data-path$='.channel']").fill("社群")
        new_row.locator("[data-path$='.role']").fill("老带新")
        new_row.locator("[data-path$='.kpi']").fill("入群 2,000 人")
        budget = new_row.locator("input[type=number][data-path$='.budget']")
        assert budget.get_attribute("min") == "0"

        budget.fill("-100")  # outside its bounds: the error shows next to the input, and approving is held
        assert "不能小于 0" in new_row.locator(".field-error[data-for$='.budget']").inner_text()
        page.click("#approve")
        assert "需要改正" in page.inner_text("#form-blocked")
        assert page.url.endswith("/approval")
        assert httpx.get(f"{served}/api/runs/{run_id}").json()["status"] == "waiting"

        budget.fill("12345")  # within its bounds
        assert new_row.locator(".field-error[data-for$='.budget']").inner_text() == ""
        rows.nth(0).locator("button.move", has_text="下移").click()  # reorder: the first row goes second
        page.fill("#by", "运营小王")
        page.click("#approve")
        page.wait_for_url(f"{served}/runs/{run_id}")
        assert errors == []
        browser.close()

    done = wait_status(served, run_id, "done")
    assert done["status"] == "done"
    audit = httpx.get(f"{served}/api/runs/{run_id}").json()["approvals"][0]
    assert audit["by"] == "运营小王" and audit["action"] == "approve"
    assert any(d["path"].startswith("channels") for d in audit["diff"])
    added = {"channel": "社群", "role": "老带新", "budget": 12345, "kpi": "入群 2,000 人"}
    assert audit["edits"]["channels"] == [*channels[1:], added, channels[0]]  # the first row moved down one
    sheet = load_workbook(project_dir / ".playbook" / "runs" / run_id / "campaign_plan.xlsx")["预算"]
    rows_written = [[cell.value for cell in row] for row in sheet.iter_rows(min_row=2)]
    assert [row[:4] for row in rows_written] == [[c["channel"], c["role"], c["budget"], c["kpi"]]
                                                 for c in [*channels[1:], added, channels[0]]]
