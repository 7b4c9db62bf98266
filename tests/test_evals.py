"""`playbook eval`: suites, scripted approvals, record/replay, judges with repeats, baselines, reports, errors.

Runs the real CLI in a subprocess against a small playbook; the suites' `fake_llm:` script starts the fake
OpenAI-compatible server on loopback for live runs and recordings; replays make no call at all."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import yaml

from tests.conftest import ROOT, cli

pytestmark = pytest.mark.usefixtures("english")  # these tests check what the reports say, in English

PLAYBOOK = """\
name: push_copy
inputs:
  topic: {type: string}
steps:
  - id: draft
    llm:
      prompt: >-
        写一条关于 ${{ inputs.topic }} 的推送{% if approval.comment %}。修改意见：${{ approval.comment }}{% endif %}
      output: {title: string, body: string}
  - id: review
    approval:
      title: 审核推送
      show: ${{ steps.draft.output }}
      editable: [title]
      on_reject: draft
outputs:
  title: ${{ steps.review.output.title }}
  body: ${{ steps.review.output.body }}
"""

FIRST_DRAFT = {"match": "推送", "reply": {"title": "第一版标题", "body": "每天记一笔，月底不月光。"}}
REPLIES = {"rules": [
    {"match": "你是严格的评审", "replies": [{"score": 8, "reason": "具体"}, {"score": 3, "reason": "空泛"}]},
    {"match": "修改意见", "reply": {"title": "第二版：记账一分钟", "body": "每天一分钟，月底不再月光。"}},
    FIRST_DRAFT,
]}

SUITE = {
    "playbook": "../push_copy.yaml",
    "fake_llm": {"script": "replies.yaml"},
    "judge_model": "default",
    "cases": [{
        "id": "reject_then_approve",
        "inputs": {"topic": "记账"},
        "approvals": [{"step": "review", "action": "reject", "comment": "标题要有数字"},
                      {"step": "review", "action": "approve", "edits": {"title": "第二版：记账 1 分钟"}}],
        "assert": [
            {"approval_reached": "review"},
            {"name": "first draft kept", "that": "steps.draft.visits[0].output.title", "equals": "第一版标题"},
            {"name": "second draft took the comment", "that": "steps.draft.output.title", "contains": "第二版"},
            {"name": "reviewer's edit is final", "that": "outputs.title", "equals": "第二版：记账 1 分钟"},
            {"that": "outputs.body", "length": {"min": 4, "max": 60}},
        ],
    }],
}


def make_project(tmp_path: Path, suite: dict | None = None, replies: dict | None = None) -> Path:
    (tmp_path / "push_copy.yaml").write_text(PLAYBOOK, encoding="utf-8")
    evals = tmp_path / "evals"
    evals.mkdir(exist_ok=True)
    (evals / "replies.yaml").write_text(yaml.safe_dump(replies or REPLIES, allow_unicode=True), encoding="utf-8")
    (evals / "push.yaml").write_text(yaml.safe_dump(suite or SUITE, allow_unicode=True, sort_keys=False),
                                     encoding="utf-8")
    return evals / "push.yaml"


def report_of(tmp_path: Path, name: str = "push") -> dict:
    return json.loads((tmp_path / "report" / f"{name}.json").read_text(encoding="utf-8"))


# Any model call that escapes the cassette goes here and fails: nothing listens on port 9.
NO_NETWORK = {"PLAYBOOK_MODEL_DEFAULT": "openai/gpt-4o-mini", "PLAYBOOK_API_BASE_DEFAULT": "http://127.0.0.1:9/v1",
              "OPENAI_API_KEY": "sk-unused-in-replay"}


def test_reject_then_approve_recorded_then_replayed_with_no_network(tmp_path: Path) -> None:
    make_project(tmp_path)
    recorded = cli("eval", "evals/push.yaml", "--record", "--report", "report", cwd=tmp_path)
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    cassette = yaml.safe_load((tmp_path / "evals" / "cassettes" / "push.yaml").read_text(encoding="utf-8"))
    assert "fake server" in cassette["recorded_against"]
    assert [e["step"] for e in cassette["entries"]] == ["draft", "draft"]  # first draft, then after the rejection
    assert "修改意见：标题要有数字" in cassette["entries"][1]["request"]["messages"][0]["content"]
    (tmp_path / "evals" / "replies.yaml").unlink()  # a replay needs no server and no script
    replayed = cli("eval", "evals/push.yaml", "--replay", "--report", "report", cwd=tmp_path, env=NO_NETWORK)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    case = report_of(tmp_path)["cases"][0]
    assert case["passed"] and [a["passed"] for a in case["assertions"]] == [True] * 5
    assert case["tokens"] > 0 and case["tokens"] == report_of(tmp_path)["totals"]["tokens"]


def test_second_draft_assertion_fails_when_the_comment_is_ignored(tmp_path: Path) -> None:
    ignores_comments = {"rules": [FIRST_DRAFT]}
    make_project(tmp_path, replies=ignores_comments)
    result = cli("eval", "evals/push.yaml", "--report", "report", cwd=tmp_path)
    assert result.returncode == 1
    failing = [a for a in report_of(tmp_path)["cases"][0]["assertions"] if not a["passed"]]
    assert [a["label"] for a in failing] == ["second draft took the comment"]
    assert "'第一版标题' does not contain '第二版'" in failing[0]["reason"] and failing[0]["step"] == "draft"


def test_replay_with_a_removed_entry_fails_naming_the_step_and_showing_the_diff(tmp_path: Path) -> None:
    make_project(tmp_path)
    assert cli("eval", "evals/push.yaml", "--record", cwd=tmp_path).returncode == 0
    path = tmp_path / "evals" / "cassettes" / "push.yaml"
    cassette = yaml.safe_load(path.read_text(encoding="utf-8"))
    del cassette["entries"][1]  # the draft written after the rejection
    path.write_text(yaml.safe_dump(cassette, allow_unicode=True), encoding="utf-8")
    result = cli("eval", "evals/push.yaml", "--replay", "--report", "report", cwd=tmp_path, env=NO_NETWORK)
    assert result.returncode == 1
    error = report_of(tmp_path)["cases"][0]["error"]
    assert error.startswith("step 'draft': the cassette") and "has no recorded reply" in error
    assert "-写一条关于 记账 的推送\n+写一条关于 记账 的推送。修改意见：标题要有数字" in error  # the request diff
    assert "step 'draft'" in result.stdout


def test_repeat_5_flaky_judge_applies_k_of_n_and_caches_verdicts(tmp_path: Path) -> None:
    suite = {**SUITE, "cases": [{**SUITE["cases"][0], "assert": [
        {"name": "copy is specific", "that": "outputs.body", "judge": {"rubric": "具体，不空泛", "min_score": 7}}]}]}
    make_project(tmp_path, suite=suite)
    lenient = cli("eval", "evals/push.yaml", "--repeat", "5", "--k", "3", "--report", "report", cwd=tmp_path)
    assert lenient.returncode == 0, lenient.stdout + lenient.stderr
    case = report_of(tmp_path)["cases"][0]
    assert (case["passes"], case["runs"], case["pass_rate"]) == (3, 5, 0.6)  # judge answers 8, 3, 8, 3, 8
    assert case["assertions"][0]["passed_runs"] == 3 and "3/10" in case["assertions"][0]["reason"]
    assert "at least k of its N runs" in report_of(tmp_path)["rule"]
    # the same five verdicts come from the judge cache, even though the judge now always says 3
    low = {"match": "你是严格的评审", "reply": {"score": 3, "reason": "空泛"}}
    always_low = {"rules": [low, *REPLIES["rules"][1:]]}
    make_project(tmp_path, suite=suite, replies=always_low)
    strict = cli("eval", "evals/push.yaml", "--repeat", "5", "--k", "4", "--report", "report", cwd=tmp_path)
    assert strict.returncode == 1
    case = report_of(tmp_path)["cases"][0]
    assert (case["passes"], case["passed"]) == (3, False)
    assert "3/5" in strict.stdout


def test_baseline_comparison_names_regressed_case_and_first_diverging_step(tmp_path: Path) -> None:
    make_project(tmp_path)
    assert cli("eval", "evals/push.yaml", "--save-baseline", cwd=tmp_path).returncode == 0
    assert (tmp_path / "evals" / "baselines" / "push.json").is_file()
    worse = {"rules": [FIRST_DRAFT]}
    make_project(tmp_path, replies=worse)  # the model stops taking review comments
    result = cli("eval", "evals/push.yaml", "--report", "report", cwd=tmp_path)
    assert result.returncode == 1
    comparison = report_of(tmp_path)["comparison"]
    assert comparison["regressed_cases"] == ["reject_then_approve"]
    change = comparison["cases"][0]
    assert change["diverged"]["step"] == "draft#2" and change["diverged"]["what"] == "output changed"
    assert change["newly_failing"] == ["second draft took the comment"]
    markdown = (tmp_path / "report" / "push.md").read_text(encoding="utf-8")
    assert "first diverging step: `draft (visit 2)`" in markdown and comparison["rule"] in markdown
    html = (tmp_path / "report" / "push.html").read_text(encoding="utf-8")
    assert '<span class="diff_chg">：记账一分钟</span>' in html  # baseline's second draft, side by side and diffed
    assert "http" not in html.split("<body>")[1]  # self-contained: nothing to fetch
    junit = ET.fromstring((tmp_path / "report" / "push.junit.xml").read_text(encoding="utf-8"))
    assert junit.get("failures") == "1" and junit.find("testcase/failure") is not None
    assert "first diverging step draft (visit 2)" in result.stdout


def test_bad_suite_files_give_file_line_col(tmp_path: Path) -> None:
    make_project(tmp_path)
    bad = (tmp_path / "evals" / "bad.yaml")
    bad.write_text(
        "playbook: ../push_copy.yaml\n"
        "cases:\n"
        "  - id: one\n"
        "    inputs: {topic: x}\n"
        "    approvals: [{step: reviw, action: approve}]\n"
        "    assert:\n"
        "      - that: steps.drafts.output\n"
        "        equals: 1\n"
        "      - that: outputs.title\n"
        "        equals: a\n"
        "        regex: b\n"
        "      - that: outputs.title\n"
        "        equal: a\n", encoding="utf-8")
    result = cli("eval", "evals/bad.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "evals/bad.yaml:9:9: cases[0].assert[1]: one check per assertion, got equals, regex" in result.stderr
    assert "evals/bad.yaml:13:9: cases[0].assert[2].equal: unknown field 'equal' (did you mean 'equals'?)" in \
        result.stderr
    bad.write_text(bad.read_text(encoding="utf-8").replace("        regex: b\n", "").replace("equal: a", "equals: a"),
                   encoding="utf-8")
    result = cli("eval", "evals/bad.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "evals/bad.yaml:5:24: 'reviw' is not an approval step of push_copy (did you mean 'review'?)" in result.stderr
    assert "evals/bad.yaml:7:15: no step 'drafts' in the playbook (did you mean 'draft'?)" in result.stderr
    assert "Traceback" not in result.stderr
    (tmp_path / "evals" / "mychecks.py").write_text("def is_short(value, case):\n    return len(value) < 9\n")
    bad.write_text("playbook: ../push_copy.yaml\ncases:\n  - id: one\n    assert:\n"
                   "      - {that: outputs.title, python: 'mychecks:is_shrt'}\n"
                   "      - {that: outputs.title, python: 'nochecks:is_short'}\n", encoding="utf-8")
    result = cli("eval", "evals/bad.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "evals/bad.yaml:5:39: 'mychecks' has no function 'is_shrt' (did you mean 'is_short'?)" in result.stderr
    assert "evals/bad.yaml:6:39: cannot import 'nochecks'" in result.stderr


def test_dataset_rows_from_csv_and_xlsx_with_column_mapping(tmp_path: Path) -> None:
    import openpyxl

    from runner.evals.load import SuiteError, load_suite

    make_project(tmp_path)
    (tmp_path / "evals" / "cases.csv").write_text("编号,主题,期望\nc1,记账,\"[\"\"第一版标题\"\"]\"\nc2,理财,[]\n",
                                                    encoding="utf-8")
    book = openpyxl.Workbook()
    book.active.append(["编号", "主题", "期望"])
    book.active.append(["x1", "存钱", "第一版标题"])
    book.save(tmp_path / "evals" / "cases.xlsx")
    for name, ids in (("cases.csv", ["c1", "c2"]), ("cases.xlsx", ["x1"])):
        suite = {"playbook": "../push_copy.yaml", "dataset": {"file": name, "columns": {
            "id": "编号", "inputs.topic": "主题", "vars.expected": "期望"}}}
        path = make_project(tmp_path, suite=suite)
        loaded = load_suite(path)
        assert [c.id for c in loaded.cases] == ids
        assert loaded.cases[0].inputs == {"topic": {"c1": "记账", "x1": "存钱"}[ids[0]]}
    assert load_suite(make_project(tmp_path, suite={"playbook": "../push_copy.yaml", "dataset": {
        "file": "cases.csv", "columns": {"id": "编号", "inputs.topic": "主题"}}})).cases[0].vars == {}
    suite = {"playbook": "../push_copy.yaml", "dataset": {"file": "cases.csv", "columns": {"id": "序号"}}}
    try:
        load_suite(make_project(tmp_path, suite=suite))
    except SuiteError as exc:
        assert "column '序号' is not in" in str(exc) and "(columns: 编号, 主题, 期望)" in str(exc)
    else:
        raise AssertionError("a missing column must be an error")


def test_tool_fixtures_answer_or_redirect_calls(tmp_path: Path) -> None:
    (tmp_path / "sheet.yaml").write_text(
        "name: sheet_count\ninputs:\n  path: {type: string}\nsteps:\n"
        "  - id: read\n    tool: sheet.read\n    with: {path: '${{ inputs.path }}'}\n"
        "  - id: page\n    tool: web.fetch\n    with: {url: 'https://example.com/news'}\n"
        "outputs:\n  rows: ${{ steps.read.rows | length }}\n  title: ${{ steps.page.output.title }}\n",
        encoding="utf-8")
    evals = tmp_path / "evals"
    evals.mkdir()
    (evals / "rows.csv").write_text("a,b\n1,2\n3,4\n5,6\n", encoding="utf-8")
    suite = {"playbook": "../sheet.yaml", "cases": [{
        "id": "fixture_sheet", "inputs": {"path": "/nowhere/real.xlsx"},
        "fixtures": [{"tool": "sheet.read", "args": {"path": "rows.csv"}},
                     {"tool": "web.fetch", "match": {"url": "https://example.com/news"},
                      "output": {"title": "录好的页面", "text": "", "url": "https://example.com/news"}}],
        "assert": [{"that": "outputs.rows", "equals": 3}, {"that": "outputs.title", "equals": "录好的页面"}]}]}
    (evals / "sheet.yaml").write_text(yaml.safe_dump(suite, allow_unicode=True), encoding="utf-8")
    result = cli("eval", "evals/sheet.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def copy_shipped(tmp_path: Path) -> None:
    for folder in ("evals", "playbooks", "examples"):
        shutil.copytree(ROOT / folder, tmp_path / folder)


def test_broken_playbook_copy_is_caught_naming_case_step_and_field(tmp_path: Path) -> None:
    copy_shipped(tmp_path)
    playbook = tmp_path / "playbooks" / "feedback_digest.yaml"
    text = playbook.read_text(encoding="utf-8")
    broken = text.replace("每条写清证据（哪些组、多少条）和优先级（P0/P1/P2）", "每条写清优先级（P0/P1/P2）") \
        .replace("need: {type: string, title: 需求}, evidence: {type: string, title: 证据},",
                 "need: {type: string, title: 需求},")
    assert broken != text and broken.count("evidence") < text.count("evidence")
    playbook.write_text(broken, encoding="utf-8")
    result = cli("eval", "evals/feedback_digest.yaml", "--case", "no_review", "--report", "report", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    case = report_of(tmp_path, "feedback_digest")["cases"][0]
    failing = {a["label"]: a for a in case["assertions"] if not a["passed"]}
    evidence = failing["every need has evidence"]
    assert evidence["step"] == "themes" and "has no field 'evidence' (fields: need, priority)" in evidence["reason"]
    assert "no_review: every need has evidence [step themes]" in result.stdout
    comparison = report_of(tmp_path, "feedback_digest")["comparison"]  # against the committed baseline
    assert comparison["regressed_cases"] == ["no_review"]
    assert comparison["cases"][0]["diverged"]["step"] == "themes#1"


def test_shipped_suites_replay_from_committed_cassettes() -> None:
    suites = sorted((ROOT / "evals").glob("*.yaml"))
    playbooks = sorted((ROOT / "playbooks").glob("*.yaml"))
    assert [s.stem for s in suites] == [p.stem for p in playbooks]  # one suite per shipped playbook
    for suite in suites:
        assert (ROOT / "evals" / "cassettes" / suite.name).is_file()
        assert (ROOT / "evals" / "baselines" / f"{suite.stem}.json").is_file()
        head = suite.read_text(encoding="utf-8")
        assert "recorded against the fake" in head.replace("\n# ", " ") or "fake server" in head


def test_pytest_collects_a_suite_case_by_case_and_reports_why_a_case_failed(tmp_path: Path) -> None:
    import subprocess
    import sys

    suite = {**SUITE, "cases": [SUITE["cases"][0], {"id": "plain", "inputs": {"topic": "理财"},
                                                    "approvals": [{"step": "review"}],
                                                    "assert": [{"that": "outputs.title", "equals": "第一版标题"}]}]}
    make_project(tmp_path, suite=suite, replies={"rules": [FIRST_DRAFT]})  # comments are ignored: case 1 fails
    result = subprocess.run([sys.executable, "-m", "pytest", "evals/push.yaml", "-q", "-p", "no:cacheprovider",
                             "--rootdir", str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 1 passed" in result.stdout
    assert "FAILED evals/push.yaml::reject_then_approve" in result.stdout
    assert "second draft took the comment [step draft]: steps.draft.output.title: '第一版标题' does not contain" \
        in result.stdout


def test_bootstrap_rule_separates_a_consistent_drop_from_noise() -> None:
    from runner.evals.baseline import bootstrap_drop, first_divergence

    assert not bootstrap_drop([(0.8, 0.8)] * 10)["regressed"]
    drop = bootstrap_drop([(0.9, 0.7), (0.8, 0.65), (1.0, 0.8), (0.7, 0.6), (0.9, 0.75), (0.85, 0.7)])
    assert drop["regressed"] and drop["interval"][1] < 0 and drop["mean_delta"] == -0.1583
    noisy = bootstrap_drop([(0.9, 0.7), (0.6, 0.8), (0.8, 0.75), (0.7, 0.85), (0.9, 0.85), (0.6, 0.5)])
    assert noisy["mean_delta"] < 0 and noisy["interval"][0] < 0 < noisy["interval"][1] and not noisy["regressed"]
    before = [{"id": "a#1", "status": "done", "digest": "x"}, {"id": "b#1", "status": "done", "digest": "y"}]
    assert first_divergence(before, before) is None
    after = [before[0], {"id": "b#1", "status": "failed", "digest": "z", "output": None}]
    assert first_divergence(before, after)["step"] == "b#1"
    assert first_divergence(before, before[:1]) == {"step": "b#1", "what": "ran in the baseline but not now",
                                                    "before": None, "after": None}
