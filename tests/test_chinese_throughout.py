"""What an ops user reads of a shipped playbook's run is Chinese: no English status word and no unformatted
float on the console, in the report, or on the web pages (runs, the run, the approval form). Technical terms
(tokens, LLM, JSON, on_error, step ids, commands, file names) are allowed; status words and raw floats are not.

retro runs feedback_digest as a sub-playbook, computes a scorecard and charts, and waits for an approval;
kpi_report states an anomaly method and a number-checking rule — together they show most of what a run says."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from starlette.testclient import TestClient

from runner.config import load_project
from runner.server import create_app
from runner.testing import FakeLLMServer, load_script
from tests.conftest import ROOT, cli

STATUS_WORDS = re.compile(r"\b(done|failed|waiting|running|cancelled|skipped|approved|rejected|interrupted|approve|"
                          r"reject|steady|rising|falling|True|False|None|null)\b")
RAW_FLOAT = re.compile(r"(?<![\w.])-?\d{1,3}(?:\d{3})+\.0\b|(?<![\w.])-?\d+\.\d{5,}\b|(?<![\w.,])\d{4,}\.0\b")
TAGS = re.compile(r"<script.*?</script>|<style.*?</style>|<[^>]+>", re.S)
# where an English word is a name, not a word read as a status: commands, step ids, file names, URLs, code
ALLOWED = re.compile(r"playbook (approve|reject|resume)|--[a-z-]+|`[^`]*`|\S+\.(?:py|yaml|md|xlsx|png|csv|json|"
                     r"jsonl|html)\b|https?://\S+|value=\"[^\"]*\"|name=\"[^\"]*\"|<code>.*?</code>")


def offending(text: str, where: str) -> list[str]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        visible = ALLOWED.sub(" ", line)
        for pattern in (STATUS_WORDS, RAW_FLOAT):
            found += [f"{where}:{number}: {match.group(0)!r} in {line.strip()[:160]!r}"
                      for match in pattern.finditer(visible)]
    return found


def page_text(html: str) -> str:
    return TAGS.sub("\n", ALLOWED.sub(" ", html))


def run_with_replies(project: Path, name: str, args: list[str]) -> tuple[FakeLLMServer, str]:
    server = load_script(ROOT / "evals" / "replies" / f"{name}.yaml").start()
    (project / "playbook.toml").write_text(server.toml(), encoding="utf-8")
    done = cli("run", f"playbooks/{name}.yaml", *args, cwd=project, env={"FAKE_LLM_API_KEY": "k"})
    return server, done.stdout + done.stderr


def test_a_retro_and_a_kpi_report_read_in_chinese(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "playbooks", tmp_path / "playbooks")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    goals = json.dumps([{"metric": "注册", "target": 9000}, {"metric": "付费", "target": 800},
                        {"metric": "收入", "target": 130000}, {"metric": "roi", "target": 20}], ensure_ascii=False)
    inputs = tmp_path / "retro_inputs.json"
    inputs.write_text(json.dumps({
        "campaign": "轻记 App 双十一会员活动", "metrics": "examples/retro/metrics.csv",
        "feedback": "examples/retro/feedback.csv", "notes": "examples/retro/notes.md", "goals": json.loads(goals),
        "funnel": ["曝光", "点击", "注册", "付费"], "revenue": "收入", "cost": "成本"}, ensure_ascii=False),
        encoding="utf-8")
    problems: list[str] = []
    server, console = run_with_replies(tmp_path, "retro", ["--inputs", str(inputs)])
    try:
        assert "‖ 等待审核" in console, console
        problems += offending(console, "retro console (run)")
        run_id = re.search(r"playbook approve (\S+)", console).group(1)  # type: ignore[union-attr]
        with TestClient(create_app(load_project(tmp_path)), client=("127.0.0.1", 50000),
                        base_url="http://127.0.0.1:8600") as http:
            for path in ("/", f"/runs/{run_id}", f"/runs/{run_id}/approval"):
                shown_page = http.get(path)
                assert shown_page.status_code == 200 and "retro" in shown_page.text, shown_page.text[:300]
                problems += offending(page_text(shown_page.text), f"page {path} (waiting)")
        approved = cli("approve", run_id, "--by", "运营小李", cwd=tmp_path, env={"FAKE_LLM_API_KEY": "k"})
        assert approved.returncode == 0, approved.stderr
        problems += offending(approved.stdout + approved.stderr, "retro console (approve)")
        shown = cli("runs", "show", run_id, cwd=tmp_path)
        problems += offending(shown.stdout, "runs show")
        problems += offending(cli("runs", "list", cwd=tmp_path).stdout, "runs list")
        with TestClient(create_app(load_project(tmp_path)), client=("127.0.0.1", 50000),
                        base_url="http://127.0.0.1:8600") as http:
            for path in ("/", f"/runs/{run_id}"):
                shown_page = http.get(path)
                assert shown_page.status_code == 200 and "已完成" in shown_page.text, shown_page.text[:300]
                problems += offending(page_text(shown_page.text), f"page {path} (done)")
        for report in sorted((tmp_path / ".playbook" / "runs" / run_id).glob("*.md")):
            problems += offending(report.read_text(encoding="utf-8"), report.name)
    finally:
        server.stop()

    server, console = run_with_replies(tmp_path, "kpi_report", ["-i", "table=examples/kpi_page_views.csv"])
    try:
        assert "✓ 已完成" in console, console
        problems += offending(console, "kpi_report console")
        run_id = re.search(r"✓ 已完成\S* (\S+)", console).group(1)  # type: ignore[union-attr]
        for report in sorted((tmp_path / ".playbook" / "runs" / run_id).glob("*.md")):
            problems += offending(report.read_text(encoding="utf-8"), report.name)
    finally:
        server.stop()
    assert problems == [], "\n".join(problems)


def test_the_checker_catches_what_it_should() -> None:
    assert offending("✓ load done in 0.1s", "x") and offending("目标 9000.0", "x") and offending("met: True", "x")
    assert offending("0.1234567", "x") and offending("| 1 | steady | 话题 |", "x")
    assert not offending("✓ load 已完成，用时 0.1 秒 tokens 1,234", "x")
    assert not offending("通过：playbook approve 20261127-x", "x") and not offending("达成率 91.23%", "x")


# technical terms and placeholders a Chinese ops user reads as they are
TERMS = {"tokens", "LLM", "JSON", "YAML", "HTML", "JUnit", "markdown", "mermaid", "Schema", "cron", "worker", "Celery",
         "Redis", "broker", "playbook", "CNY", "Ctrl", "SIGTERM", "HOST", "PORT", "DIR", "id", "pid", "API", "README",
         "Team", "server", "DEBUG", "INFO", "WARNING", "UUID", "OS", "MB", "N", "k", "bool", "celery", "host",
         "http", "runs", "chunks", "approval", "comment", "max_cost", "limits", "catch_up", "triggers", "schedules",
         "queue", "fake_llm", "on_reject", "on_error", "PLAYBOOK_PROJECT", "PLAYBOOK_BROKER_URL", "cassette",
         # the commands themselves
         "run", "import", "resume", "approve", "reject", "cancel", "validate", "graph", "schema", "tools", "eval",
         "scheduler", "schedule", "serve", "status", "list", "show", "logs", "pause", "now", "evals", "kb",
         # the rules `aggregate:` takes, named in the error that asks for it
         "count", "sum", "mean", "min", "max", "nunique"}
# code a message suggests on its own line, run ids (their random hex suffix), quoted names, constants, brackets,
# expressions, snake_case, paths
PLACEHOLDER = re.compile(r"^\s+(?:aggregate: |playbook run ).*$|\b\d{8}-\d{6}-[\w.-]+|'[^'\s]*'|"
                         r"\b[A-Z][A-Z_]+\b|\[[a-z_. ]+\]|\$\{\{[^}]*\}\}|<[^<>]+>|\b[a-z]+_[a-z_]+\b|"
                         r"\b(?:double_eleven|retro)\b|/\S+|python -m runner|\S+\.toml\b|\b[A-Z][a-z]+/\w+")


def english_words(text: str, names: frozenset[str] = frozenset()) -> list[str]:
    """English words left in `text`, outside technical terms, code, paths and the `names` the user wrote (step
    ids, playbook names)."""
    words = []
    for line in text.splitlines():
        visible = PLACEHOLDER.sub(" ", ALLOWED.sub(" ", line))
        words += [f"{w!r} in {line.strip()[:120]!r}" for w in re.findall(r"[A-Za-z][A-Za-z']+", visible)
                  if w not in TERMS and w not in names]
    return words


def test_help_status_schedules_and_an_eval_speak_chinese_without_english_words(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "playbooks", tmp_path / "playbooks")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    shutil.copytree(ROOT / "evals", tmp_path / "evals")
    (tmp_path / "playbook.toml").write_text(
        '[[schedules]]\nname = "早报"\nplaybook = "playbooks/kpi_report.yaml"\ncron = "0 9 * * 1-5"\n'
        'inputs = {table = "examples/kpi_page_views.csv"}\n', encoding="utf-8")
    # one row per order, not per day: metrics.load fails the run, naming the rule to add (a tool's error, framed)
    (tmp_path / "events.csv").write_text("date,金额\n" + "2026-11-01,3\n" * 4 + "2026-11-02,5\n", encoding="utf-8")
    (tmp_path / "events.yaml").write_text(
        "name: events\ninputs: {table: {type: file}}\nsteps:\n  - id: load\n    tool: metrics.load\n"
        "    with: {path: '${{ inputs.table }}', time: date}\n", encoding="utf-8")
    said = []
    for args in (["--help"], ["run", "--help"], ["runs", "--help"], ["schedule", "--help"], ["eval", "--help"],
                 ["schedule", "list"], ["status"], ["run", "--nope"], ["runs", "list", "--limit", "x"],
                 ["eval", "evals/retro.yaml", "--replay"],
                 ["validate", str(ROOT / "tests" / "broken" / "template_unknown_output_field.yaml")],
                 ["run", "playbooks/kpi_report.yaml", "-i", "table=examples/missing.csv"],
                 ["run", "events.yaml", "-i", "table=events.csv"]):
        done = cli(*args, cwd=tmp_path, env={"COLUMNS": "200"})
        assert "Traceback" not in done.stderr, done.stderr
        said.append((args, done.stdout + done.stderr))
    assert "计划" in said[5][1] and "早报" in said[5][1]  # schedule list ran, in Chinese
    assert "团队服务器" in said[6][1] and said[7][1].count("没有选项") == 1
    assert "行的时间与前面重复" in said[-1][1] and "步骤 'load'：metrics.load：参数 'aggregate'" in said[-1][1]
    names = frozenset({"events", "load", "metrics"})  # the playbook written above: its name, step id, tool family
    assert [(args, words) for args, text in said if (words := english_words(text, names))] == []
