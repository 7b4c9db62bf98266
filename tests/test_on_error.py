"""`on_error`: one bad item or step does not kill a run, and nothing it went past is hidden."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from runner.config import load_project
from runner.server import create_app
from runner.testing import serve_directory
from tests.conftest import cli, run_playbook, write_playbook

FAST_WEB = '\n[web]\ndelay = 0\nretries = 1\ntimeout = 3\nallow_private = ["127.0.0.1"]\n'

FETCH_ALL = """
name: fetch_all
inputs: {urls: {type: list}}
steps:
  - id: pages
    map: ${{ inputs.urls }}
    as: url
    tool: web.fetch
    with: {url: "${{ url }}", extract: html}
    on_error: skip
    MAX
  - id: count
    tool: file.write
    with:
      path: failed.md
      content: "{% for e in steps.pages.errors %}${{ e.index }} ${{ e.status }} ${{ e.url }}\\n{% endfor %}"
outputs:
  fetched: "${{ steps.pages.output | select | list | length }}"
  failed: "${{ steps.pages.errors | map(attribute='status') | list }}"
"""


def _site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    for name in ("a", "b", "c"):
        (site / f"{name}.html").write_text(f"<html><body>{name}</body></html>", encoding="utf-8")
    return site


def _fetch_all(project_dir: Path, tmp_path: Path, pages: list[str], limit: str = "") -> tuple[Any, list[str]]:
    """Run FETCH_ALL over pages of a loopback site (a, b, c exist); (finished process, the URLs)."""
    with (project_dir / "playbook.toml").open("a", encoding="utf-8") as toml:
        toml.write(FAST_WEB)
    path = write_playbook(project_dir, FETCH_ALL.replace("MAX", limit))
    with serve_directory(_site(tmp_path)) as base:
        urls = [f"{base}/{page}" for page in pages]
        return cli("run", str(path), "-i", "urls=" + ",".join(urls), cwd=project_dir), urls


def test_a_map_goes_on_past_a_404_and_lists_it_with_status_and_url(project_dir: Path, tmp_path: Path) -> None:
    done, urls = _fetch_all(project_dir, tmp_path, ["a.html", "missing.html", "b.html", "c.html"])
    assert done.returncode == 0, done.stderr
    assert "已完成，但有 1 处出错已按 on_error 跳过" in done.stdout
    assert "4 项中 1 项出错" in done.stdout and "HTTP 404" in done.stdout
    assert "fetched：3" in done.stdout and "failed：[404]" in done.stdout
    run_id = done.stdout.split("已按 on_error 跳过")[1].split()[0]
    shown = cli("runs", "show", run_id, cwd=project_dir)
    assert "4 项中 1 项出错" in shown.stdout and "missing.html" in shown.stdout
    report = (project_dir / ".playbook" / "runs" / run_id / "failed.md").read_text(encoding="utf-8")
    assert report.strip() == f"1 404 {urls[1]}"
    summary = json.loads((project_dir / ".playbook" / "runs" / run_id / "run.json").read_text(encoding="utf-8"))
    assert summary["problems"][0]["failed_items"] == 1 and summary["problems"][0]["items"] == 4
    with TestClient(create_app(load_project()), client=("127.0.0.1", 50000), base_url="http://127.0.0.1:8600") as http:
        page = http.get(f"/runs/{run_id}").text
    assert 'id="problems"' in page and "步骤 pages：4 项中 1 项出错" in page and "missing.html" in page


def test_max_failures_fails_the_step_when_too_many_items_fail(project_dir: Path, tmp_path: Path) -> None:
    done, _ = _fetch_all(project_dir, tmp_path, ["a.html", "x.html", "y.html", "c.html"], "max_failures: 25%")
    assert done.returncode == 1
    assert "4 项中 2 项失败，超过了 max_failures 25% 的允许" in done.stderr


def test_default_and_goto_stand_in_for_a_failed_step(project_dir: Path) -> None:
    path = write_playbook(project_dir, """
name: fallbacks
steps:
  - id: notes
    tool: file.read
    with: {path: no-such-notes.md}
    on_error: {default: {text: 暂无备注}}
  - id: load
    tool: sheet.read
    with: {path: no-such-table.csv}
    on_error: {goto: explain}
  - id: total
    tool: file.write
    with: {path: total.md, content: "${{ steps.load.count }}"}
    goto: end
  - id: explain
    tool: file.write
    with: {path: why.md, content: "读不到表：${{ steps.load.error.message }}"}
outputs:
  notes: ${{ steps.notes.output.text }}
  notes_status: ${{ steps.notes.status }}
  why: ${{ steps.explain.path | default('') }}
  total: ${{ steps.total.output }}
""")
    outcome = run_playbook(path)
    assert outcome.status == "done", outcome.error
    assert outcome.outputs["notes"] == "暂无备注" and outcome.outputs["notes_status"] == "failed"
    assert outcome.outputs["total"] is None  # the normal branch did not run
    why = Path(outcome.outputs["why"]).read_text(encoding="utf-8")
    assert why.startswith("读不到表：") and "no-such-table.csv" in why
    assert [p["step"] for p in outcome.problems] == ["notes", "load"]


def test_on_error_goto_to_an_unknown_step_is_a_validate_error(tmp_path: Path) -> None:
    path = write_playbook(tmp_path, """
name: bad_goto
steps:
  - {id: load, tool: sheet.read, with: {path: x.csv}, on_error: {goto: explian}}
  - {id: explain, tool: file.write, with: {path: a.md, content: x}}
""")
    done = cli("validate", str(path), cwd=tmp_path)
    assert done.returncode == 2
    assert "pb.yaml:4:" in done.stderr and "没有步骤 'explian'（是不是 'explain'？）" in done.stderr


def test_trend_scan_over_many_sources_finishes_past_a_404_a_hang_and_a_broken_feed(
        project_dir: Path, tmp_path: Path) -> None:
    import socket

    from tests.conftest import ROOT

    with (project_dir / "playbook.toml").open("a", encoding="utf-8") as toml:
        toml.write("\n[web]\ndelay = 0\nretries = 1\ntimeout = 2\nper_host = 8\nallow_private = [\"127.0.0.1\"]\n")
    topics = json.loads((ROOT / "examples/trends/weibo/2026-08-17.json").read_text(encoding="utf-8"))
    site = tmp_path / "sources"
    site.mkdir()
    for n in range(19):  # 19 good hot lists of 20 topics each
        (site / f"hot{n}.json").write_text(json.dumps(topics[n * 20:(n + 1) * 20], ensure_ascii=False),
                                           encoding="utf-8")
    (site / "guardian.rss").write_bytes((ROOT / "examples/trends/guardian.rss").read_bytes())
    (site / "broken.rss").write_text("this is not <rss at all", encoding="utf-8")
    hang = socket.socket()  # accepts connections and never answers
    hang.bind(("127.0.0.1", 0))
    hang.listen(16)
    try:
        with serve_directory(site) as base:
            hot = [f"{base}/hot{n}.json" for n in range(19)] + [f"{base}/gone.json"]
            feeds = [f"{base}/guardian.rss", f"{base}/broken.rss",
                     f"http://127.0.0.1:{hang.getsockname()[1]}/slow.rss"]
            done = run_playbook(ROOT / "playbooks" / "trend_scan.yaml",
                                {"hot_lists": hot, "feeds": feeds, "keywords": ["AI"], "per_source": 20})
    finally:
        hang.close()
    assert done.status == "done", done.error
    assert sorted(done.outputs["failed_sources"]) == sorted([hot[-1], *feeds[1:]])
    report = Path(done.outputs["report"]).read_text(encoding="utf-8")
    assert "## 未能读取的来源（3）" in report
    assert f"- {hot[-1]}：" in report and "HTTP 404" in report
    assert f"- {feeds[1]}：" in report and "不是可读的 RSS/Atom 订阅" in report
    assert f"- {feeds[2]}：" in report and "未响应（等待" in report, report.split("## 未能读取")[-1]
    assert {p["step"] for p in done.problems} == {"hot", "feeds"}
    assert len(done.outputs["items"]) >= 19 * 20 * 0.9  # the good sources all made it in
