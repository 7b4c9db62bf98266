"""The `playbook` command: cold imports, schema, graph snapshot, tools, runs views, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml
from typer.testing import CliRunner

from runner.cli import app
from tests.conftest import ROOT, cli, run_playbook, write_playbook

PLAYBOOK = ROOT / "playbooks" / "feedback_digest.yaml"


def heavy_modules_loaded(*args: str) -> list[str]:
    code = ("import sys; sys.argv = ['playbook', *sys.argv[1:]]\nfrom runner.cli import app\n"
            "try:\n    app()\nexcept SystemExit:\n    pass\n"
            "print([m for m in sys.modules if m in ('litellm', 'langgraph', 'openpyxl', 'xllamacpp', 'asyncio')\n"
            "       or m.split('.')[:2] in (['runner', 'team'], ['runner', 'store'], ['runner', 'server'])])")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1].replace("'", '"'))


def test_help_and_validate_do_not_import_heavy_libraries() -> None:
    """Nor the team, store or server modules; `--help` not even asyncio (it brings ssl: 0.03 s of CPU)."""
    assert heavy_modules_loaded("--help") == []
    assert heavy_modules_loaded("validate", str(PLAYBOOK)) == ["asyncio"]


def test_schema_is_current_and_validates_the_shipped_playbook() -> None:
    result = CliRunner().invoke(app, ["schema"])
    schema = json.loads(result.stdout)
    committed = json.loads((ROOT / "playbook.schema.json").read_text(encoding="utf-8"))
    assert schema == committed, "run `playbook schema -o playbook.schema.json`"
    jsonschema.validate(yaml.safe_load(PLAYBOOK.read_text(encoding="utf-8")), schema)
    assert PLAYBOOK.read_text(encoding="utf-8").startswith(
        "# yaml-language-server: $schema=../playbook.schema.json")


def test_suite_schema_is_current_and_validates_every_shipped_suite() -> None:
    result = CliRunner().invoke(app, ["schema", "--suite"])
    schema = json.loads(result.stdout)
    committed = json.loads((ROOT / "eval.schema.json").read_text(encoding="utf-8"))
    assert schema == committed, "run `playbook schema --suite -o eval.schema.json`"
    for suite in sorted((ROOT / "evals").glob("*.yaml")):
        text = suite.read_text(encoding="utf-8")
        jsonschema.validate(yaml.safe_load(text), schema)
        assert text.startswith("# yaml-language-server: $schema=../eval.schema.json")


def test_graph_matches_snapshot() -> None:
    result = CliRunner().invoke(app, ["graph", str(PLAYBOOK)])
    snapshot = (ROOT / "tests" / "snapshots" / "feedback_digest.mmd").read_text(encoding="utf-8")
    assert result.exit_code == 0 and result.stdout == snapshot
    assert "review -.-> themes;" in snapshot  # the on_reject loop


def test_tools_lists_arguments() -> None:
    result = CliRunner().invoke(app, ["tools"])
    assert "sheet.read" in result.stdout and "path: str (必填)" in result.stdout


def test_bad_input_value_is_a_user_error(project_dir: Path) -> None:
    done = cli("run", str(PLAYBOOK), "-i", f"comments={ROOT / 'examples' / 'reviews_zh.csv'}",
               "-i", "limit=lots", "-i", "prodcut=x", cwd=project_dir)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "输入 'limit'：应是整数，而不是 'lots'" in done.stderr
    assert "没有输入 'prodcut'（是不是 'product'？）" in done.stderr


def test_runs_list_show_logs_and_missing_file_error(project_dir: Path) -> None:
    path = write_playbook(project_dir, """
name: oops
steps:
  - {id: hello, llm: {prompt: 你好}}
  - {id: load, tool: sheet.read, with: {path: missing.csv}}
""")
    outcome = run_playbook(path)
    assert outcome.status == "failed"
    assert outcome.error.startswith("步骤 'load'：sheet.read：参数 'path'：找不到文件 'missing.csv'")
    listed = cli("runs", "list", cwd=project_dir)
    assert outcome.run_id in listed.stdout and "\t失败\t" in listed.stdout
    assert listed.stdout.splitlines()[0] == "运行 id\t剧本\t状态\t开始\t耗时\ttokens\t费用（CNY）"
    assert cli("runs", cwd=project_dir).stdout == listed.stdout  # `playbook runs` alone lists them too
    shown = cli("runs", "show", outcome.run_id, cwd=project_dir)
    assert "missing.csv" in shown.stdout
    logs = cli("runs", "logs", outcome.run_id, cwd=project_dir)
    assert "step_end" in logs.stdout and "llm_call" in logs.stdout
    events = (project_dir / ".playbook" / "runs" / outcome.run_id / "events.jsonl").read_text("utf-8")
    kinds = [json.loads(line)["event"] for line in events.splitlines()]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end" and "step_start" in kinds
    # the finished step is kept: resuming after fixing the file does not ask the LLM again
    (project_dir / "missing.csv").write_text("id,text\n1,好\n", encoding="utf-8")
    resumed = cli("resume", outcome.run_id, cwd=project_dir)
    assert resumed.returncode == 0, resumed.stderr
