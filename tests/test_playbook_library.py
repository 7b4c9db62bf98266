"""Every shipped playbook: validates, compiles to its snapshotted graph, and runs end to end against the
fake server with scripted replies and approvals, leaving artifacts that re-open."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import yaml
from typer.testing import CliRunner

from runner.cli import app
from runner.dsl.validate import load_and_validate
from runner.engine.execute import RunOutcome
from runner.testing import FakeLLMServer, serve_directory
from tests.conftest import ROOT, allow_loopback, resume, run_playbook

PLAYBOOKS = sorted((ROOT / "playbooks").glob("*.yaml"))
SNAPSHOTS = Path(__file__).parent / "snapshots"
EXAMPLES = ROOT / "examples"


def approve(outcome: RunOutcome, **decision: Any) -> RunOutcome:
    assert outcome.status == "waiting", outcome.error
    return resume(outcome.run_id, decision={"action": "approve", "by": "测试", "at": time.time(), **decision})


def sheet_rows(path: str | Path, sheet: str) -> list[tuple[Any, ...]]:
    book = openpyxl.load_workbook(path, read_only=True)
    return list(book[sheet].iter_rows(values_only=True))


@pytest.mark.parametrize("path", PLAYBOOKS, ids=[p.stem for p in PLAYBOOKS])
def test_playbook_validates_and_matches_its_graph_snapshot(path: Path) -> None:
    assert path.read_text(encoding="utf-8").startswith("# yaml-language-server: $schema=../playbook.schema.json")
    load_and_validate(path)
    result = CliRunner().invoke(app, ["graph", str(path)])  # the mermaid graph `playbook graph` prints
    assert result.exit_code == 0, result.output
    graph = result.stdout
    snapshot = SNAPSHOTS / f"{path.stem}.mmd"
    if os.environ.get("UPDATE_SNAPSHOTS") or not snapshot.exists():
        snapshot.parent.mkdir(exist_ok=True)
        snapshot.write_text(graph, encoding="utf-8")
    assert graph == snapshot.read_text(encoding="utf-8"), f"graph changed; UPDATE_SNAPSHOTS=1 to accept ({path.name})"


def test_campaign_plan_simulates_every_persona_on_every_concept_and_loops_on_reject(
        project_dir: Path, server: FakeLLMServer) -> None:
    personas = [{"name": n, "profile": "p", "motivation": "m", "concern": "c"} for n in ("小林", "阿杰", "王姐")]
    concepts = [{"name": n, "framework": f, "mechanic": "m", "hook": "h", "cost_driver": "c", "moves": "x"}
                for n, f in (("七天记账打卡", "打卡"), ("年卡限时五折", "限时折扣"))]
    server.add_rule("差异明显的典型用户", {"personas": personas})
    server.add_rule("脑暴 4 个方向", {"concepts": concepts})
    inputs = yaml.safe_load((EXAMPLES / "campaign_plan.yaml").read_text(encoding="utf-8"))
    first = run_playbook(ROOT / "playbooks" / "campaign_plan.yaml", inputs)
    assert first.status == "waiting", first.error
    assert "渠道预算合计" in first.pending["title"]  # the deterministic budget check is in front of the reviewer
    rejected = resume(first.run_id, decision={"action": "reject", "by": "主管", "at": time.time(),
                                              "comment": "奖品预算砍半，加一个社群渠道"})
    assert rejected.status == "waiting"
    assert "奖品预算砍半" in server.prompts("渠道与预算")[-1]  # the plan step re-ran with the comment
    done = approve(rejected, edits={"channels": [{"channel": "社群", "role": "转化", "budget": 200000, "kpi": "付费"}]})
    assert done.status == "done", done.error
    book = openpyxl.load_workbook(done.outputs["workbook"], read_only=True)
    assert book.sheetnames == ["预算", "排期", "风险预案", "用户模拟"]
    budget = sheet_rows(done.outputs["workbook"], "预算")
    assert budget == [("渠道", "作用", "预算（元）", "考核指标"), ("社群", "转化", 200000, "付费")]
    simulation = sheet_rows(done.outputs["workbook"], "用户模拟")
    assert simulation[0][:2] == ("方案", "模拟用户")
    assert sorted((r[0], r[1]) for r in simulation[1:]) == sorted(
        (c["name"], p["name"]) for c in concepts for p in personas)  # every pair exactly once
    document = Path(done.outputs["document"]).read_text(encoding="utf-8")
    assert "## 三、渠道与预算（合计 200,000 元）" in document and "⚠" not in document
    assert "（3 位用户 × 2 个方案）" in document
    assert Path(done.outputs["document"]).with_suffix(".html").read_text(encoding="utf-8").startswith("<!doctype html>")


def test_material_brief_flags_absolute_claims_and_ranks_titles_by_stated_criteria(
        project_dir: Path, server: FakeLLMServer) -> None:
    server.add_rule("写 \\d+ 版角度不同的文案", {"variants": [
        {"angle": "利益点", "title": "全网最低价，年卡 5 折", "body": "史上最强优惠，全网最低价，错过等一年。"},
        {"angle": "场景", "title": "月底又月光？", "body": "每天花一分钟记一笔，月底知道钱去哪了。"}]})
    server.add_rule("逐条给下面的标题打分", {"scores": [
        {"title": "一分钟记一笔", "information": 3, "appeal": 3, "audience_fit": 3, "credibility": 5, "reason": "稳"},
        {"title": "月光族的第一本账", "information": 4, "appeal": 5, "audience_fit": 5, "credibility": 4,
         "reason": "准"},
        {"title": "记账 5 折", "information": 5, "appeal": 2, "audience_fit": 2, "credibility": 5, "reason": "平"}]})
    server.add_rule("合规审核|虚假或无法兑现", {"copies": [
        {"format": "push", "title": "年卡 5 折，记账从今天开始", "body": "每天一分钟，月底不再月光。", "risk": "低",
         "issues": ["删去“全网最低价”“史上最强”"]}]})
    plan = EXAMPLES / "campaign_plan.yaml"  # any text plan will do; the example brief is one
    first = run_playbook(ROOT / "playbooks" / "material_brief.yaml", {"plan": str(plan), "formats": ["push"]})
    done = approve(first)
    assert done.status == "done", done.error
    assert done.outputs["flagged_before"] == 1 and done.outputs["flagged_after"] == 0
    titles = sheet_rows(done.outputs["workbook"], "标题评分")
    assert [r[0] for r in titles[1:]] == ["月光族的第一本账", "一分钟记一笔", "记账 5 折"]  # 18, 14, 14 points
    assert [r[1] for r in titles[1:]] == [18, 14, 14]
    document = Path(done.outputs["document"]).read_text(encoding="utf-8")
    assert "初稿 1 版命中，定稿 0 条命中" in document and "1. 月光族的第一本账（18 分）" in document


def _weibo(day: str) -> list[dict[str, Any]]:
    return json.loads((EXAMPLES / "trends" / "weibo" / f"{day}.json").read_text(encoding="utf-8"))


def _topics(day: str) -> set[str]:
    """The diff computed independently: titles with '#' and spaces removed, links shorter than 4 dropped."""
    return {t["title"].replace("#", "").replace(" ", "").lower() for t in _weibo(day)
            if len(" ".join(t["title"].split())) >= 4}


def test_trend_scan_on_two_consecutive_days_reports_new_and_gone(project_dir: Path, server: FakeLLMServer) -> None:
    allow_loopback(project_dir)
    playbook = ROOT / "playbooks" / "trend_scan.yaml"
    with serve_directory(EXAMPLES / "trends") as base:
        runs = [run_playbook(playbook, {"hot_lists": [f"{base}/weibo/{day}.json"], "feeds": [f"{base}/guardian.rss"],
                                        "keywords": ["AI", "手机"], "per_source": 1000})
                for day in ("2026-08-17", "2026-08-18")]
    assert [r.status for r in runs] == ["done", "done"], runs[-1].error
    first, second = runs
    assert first.outputs["new"] == [] and first.outputs["gone"] == []  # nothing to compare with yet
    normalise = {t: t.replace("#", "").replace(" ", "").lower() for t in second.outputs["new"] + second.outputs["gone"]}
    day1, day2 = _topics("2026-08-17"), _topics("2026-08-18")
    assert {normalise[t] for t in second.outputs["new"]} == day2 - day1
    assert {normalise[t] for t in second.outputs["gone"]} == day1 - day2
    assert len(day2 - day1) > 50 and len(day1 - day2) > 50
    report = Path(second.outputs["report"]).read_text(encoding="utf-8")
    assert f"**新上榜（{len(day2 - day1)}）**" in report and f"**消失（{len(day1 - day2)}）**" in report
    scored = server.prompts("给出与我们业务的相关度")
    assert len(scored) == sum(-(-len(r.outputs["items"]) // 25) for r in runs)  # batches of 25, both days


KPI = EXAMPLES / "kpi_page_views.csv"


def _kpi_truth() -> tuple[float, float]:
    rows = list(csv.DictReader(KPI.open(encoding="utf-8")))
    return float(rows[-1]["PV"]), float(rows[-2]["PV"])


def test_kpi_report_narrative_with_computed_numbers_passes(project_dir: Path, server: FakeLLMServer) -> None:
    last, previous = _kpi_truth()
    pct = round((last - previous) / previous * 100, 2)
    server.add_rule("数据截至", {"headline": f"PV 日环比 {pct}%",
                                 "narrative": f"2016-01-20 PV {last:,.0f}，前一天 {previous:,.0f}，约 {pct:.1f}%。",
                                 "actions": ["一、复查流量来源"]})
    done = run_playbook(ROOT / "playbooks" / "kpi_report.yaml", {"table": str(KPI)})
    assert done.status == "done", done.error
    assert done.outputs["daily"]["PV"]["value"] == last and done.outputs["daily"]["PV"]["pct"] == pct
    report = Path(done.outputs["report"]).read_text(encoding="utf-8")
    assert f"| PV | 2016-01-20 | {last:,.0f} |" in report and "![PV](chart_PV.png)" in report
    assert Path(done.outputs["charts"][0]).read_bytes()[:4] == b"\x89PNG"
    html = Path(done.outputs["report_html"]).read_text(encoding="utf-8")
    assert "data:image/png;base64," in html  # the chart travels inside the one file
    assert len(server.prompts("数据截至")) == 1


def test_kpi_report_invented_number_fails_the_check_and_shows_it(project_dir: Path, server: FakeLLMServer) -> None:
    last, _ = _kpi_truth()
    server.add_rule("数据截至", {"headline": "PV 下滑", "narrative": f"PV {last:,.0f}，预计下周回升到 12,345。",
                                 "actions": ["观察"]})
    failed = run_playbook(ROOT / "playbooks" / "kpi_report.yaml", {"table": str(KPI)})
    assert failed.status == "failed"
    assert failed.error is not None and "步骤 'verify'" in failed.error
    assert "计算结果里没有的数字：12,345" in failed.error
    narratives = server.prompts("数据截至")
    assert len(narratives) == 2 and "上一稿出现了表中没有的数字：12,345" in narratives[1]
    assert not (Path(failed.run_dir) / "report.md").exists()  # no report with an invented number in it


def test_retro_computes_the_numbers_and_reuses_feedback_digest(project_dir: Path, server: FakeLLMServer) -> None:
    inputs = yaml.safe_load((EXAMPLES / "retro" / "inputs.yaml").read_text(encoding="utf-8"))
    inputs = {k: str(ROOT / v) if k in ("metrics", "feedback", "notes") else v for k, v in inputs.items()}
    first = run_playbook(ROOT / "playbooks" / "retro.yaml", inputs)
    assert first.status == "waiting", first.error  # only the retro's own approval; the sub-playbook's is off
    done = approve(first)
    assert done.status == "done", done.error
    rows = list(csv.DictReader((EXAMPLES / "retro" / "metrics.csv").open(encoding="utf-8")))
    total = {c: sum(float(r[c]) for r in rows) for c in ("曝光", "点击", "注册", "付费", "收入", "成本")}
    goals = {g["metric"]: g for g in done.outputs["goals"]}
    assert goals["注册"]["actual"] == total["注册"]
    assert goals["注册"]["attainment_pct"] == round(total["注册"] / 9000 * 100, 2)
    assert done.outputs["roi"]["roi_pct"] == round((total["收入"] - total["成本"]) / total["成本"] * 100, 2)
    funnel = {s["stage"]: s for s in done.outputs["funnel"]}
    assert funnel["付费"]["from_previous_pct"] == round(total["付费"] / total["注册"] * 100, 2)
    assert server.prompts("一组相似评论") and server.prompts("请标注")  # the feedback sub-playbook ran
    served = sum(sum(len(str(m.get("content", ""))) for m in r["messages"]) // 2 + 1 + len(r["reply"]) // 2 + 1
                 for r in server.requests)  # the fake server's own usage figures, summed over every call
    assert done.tokens_in + done.tokens_out == served  # the parent's total includes its sub-playbook's
    document = Path(done.outputs["document"]).read_text(encoding="utf-8")
    for section in ("## 一、目标达成", "## 二、漏斗", "## 五、执行失误", "## 六、策略问题", "## 七、下次怎么做"):
        assert section in document
    assert (Path(done.run_dir) / "chart_收入_成本.png").exists()


def test_feedback_digest_replies_are_tied_to_negative_comments(project_dir: Path, server: FakeLLMServer) -> None:
    server.add_rule("请标注", lambda body: {"items": [
        {"index": i, "sentiment": "负面" if i % 2 else "正面", "topic": "服务", "good_case": i % 2 == 0}
        for i in _indexes(body)]})
    first = run_playbook(ROOT / "playbooks" / "feedback_digest.yaml",
                         {"comments": str(EXAMPLES / "reviews_zh.csv"), "limit": 60, "max_replies": 12})
    done = approve(first)
    assert done.status == "done", done.error
    labelled = {str(r[0]): r for r in sheet_rows(done.outputs["workbook"], "标注")[1:]}
    replies = sheet_rows(done.outputs["workbook"], "回复草稿")
    assert replies[0] == ("编号", "评论", "回复草稿", "针对的问题") and len(replies) == 13
    for rid, text, reply, _ in replies[1:]:
        assert labelled[str(rid)][3] == "负面" and labelled[str(rid)][1] == text and reply
    report = Path(done.outputs["report"]).read_text(encoding="utf-8")
    for section in ("## 用户需求分析", "## FAQ 候选", "## 好案例", "## 负面评论回复草稿（12 条"):
        assert section in report


def _indexes(body: dict[str, Any]) -> list[int]:
    schema = body["response_format"]["json_schema"]["schema"]
    item = schema["$defs"][schema["properties"]["items"]["items"]["$ref"].split("/")[-1]]
    return list(item["properties"]["index"]["enum"])
