"""`playbook import dify` on 46 real, user-written Dify apps (tests/fixtures/import/dify): each imports, validates
and matches its reviewed snapshot; a few run end to end against the fake server (their HTTP APIs on loopback
stand-ins); code nodes run the user's code through the generated plugin, found through the entry point; what cannot
be translated is listed and makes the import exit 1."""

from __future__ import annotations

import importlib
import json
import os
import sqlite3
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from runner.dsl.validate import load_and_validate
from runner.importers.dify import Imported
from runner.importers.dify_steps import translate
from runner.importers.naming import slug
from runner.importers.write import playbook_text, plugin_package
from runner.testing import FakeLLMServer
from tests.conftest import ROOT, allow_images, allow_loopback, cli, run_playbook

pytestmark = pytest.mark.usefixtures("english")

CORPUS = ROOT / "tests" / "fixtures" / "import" / "dify"
APPS = sorted((CORPUS / "apps").glob("*.yml"))


def imported(app: Path, folder: Path) -> tuple[Imported, Path]:
    """The app imported into `folder` as `playbook import dify APP -o folder/<stem>.yaml` does; its code-node tools
    registered in this process (the entry point is tested on its own below)."""
    target = folder / f"{app.stem.strip()}.yaml"
    result = translate(yaml.safe_load(app.read_text(encoding="utf-8")), slug(target.stem, "imported"))
    package = plugin_package(result, folder)
    target.write_text(playbook_text(result, app.name), encoding="utf-8")
    if package is not None:
        sys.path.insert(0, str(package))
        importlib.import_module(package.name)
    return result, target


@pytest.mark.parametrize("app", APPS, ids=[p.stem.strip() for p in APPS])
def test_a_real_app_imports_validates_and_matches_its_snapshot(app: Path, tmp_path: Path) -> None:
    result, target = imported(app, tmp_path)
    load_and_validate(target)  # raises on any problem
    expected = CORPUS / "expected" / target.name
    written = target.read_text(encoding="utf-8")
    if os.environ.get("UPDATE_IMPORT_SNAPSHOTS"):
        expected.parent.mkdir(exist_ok=True)
        expected.write_text(written, encoding="utf-8")
    assert written == expected.read_text(encoding="utf-8"), f"{target.name} changed: review it, then update"
    assert result.translated + len({e.node for e in result.left_out}) == result.nodes
    assert "REDACTED" not in written  # an API key in the app never reaches the playbook



def test_branches_and_an_aggregator_run_as_in_dify(project_dir: Path, server: FakeLLMServer) -> None:
    allow_images(project_dir)
    server.add_rule("This is an", "初译")
    server.add_rule("colloquially spoken in", "按地区的建议")
    server.add_rule("give constructive criticisms", "通用建议")
    server.add_rule("edit, a translation", "终译")
    _, target = imported(CORPUS / "apps" / "translation_workflow.yml", project_dir)
    given = {"source_text": "hello", "source_lang": "English", "target_lang": "中文"}
    plain = run_playbook(target, given)
    regional = run_playbook(target, {**given, "country": "台湾"})
    assert plain.status == "done" and regional.status == "done", (plain.error, regional.error)
    assert plain.outputs == {"output": "终译"}
    edits = [r["prompt"] for r in server.requests if "edit, a translation" in r["prompt"]]
    assert "通用建议" in edits[0] and "按地区的建议" in edits[1]  # the branch taken fed the aggregator


def test_a_question_classifier_routes_to_the_class_the_model_chose(project_dir: Path,
                                                                  server: FakeLLMServer) -> None:
    allow_images(project_dir)
    result, target = imported(CORPUS / "apps" / "根据用户的意图进行回复.yml", project_dir)
    classes = yaml.safe_load(target.read_text(encoding="utf-8"))
    classifier = next(s for s in classes["steps"] if "output" in s.get("llm", {}))
    names = classifier["llm"]["output"]["class_name"]["enum"]
    server.add_rule("归入这些类别之一", {"class_name": names[1]})
    outcome = run_playbook(target, {"query": "我想退货"})
    assert outcome.status == "done", outcome.error
    assert [e.kind for e in result.left_out] == ["knowledge-retrieval"]  # listed, and its step reads as empty
    systems = [m["content"] for r in server.requests for m in r["messages"] if m["role"] == "system"]
    assert any("app的官方客服人员" in text for text in systems)  # the branch of the class chosen ran …
    assert not any("社群健康管家" in text for text in systems)  # … and not the other
    assert len(server.requests) == 4  # intent, classifier, the branch's reply, the styled reply


def test_a_code_node_runs_the_users_code_through_the_entry_point(tmp_path: Path) -> None:
    app = CORPUS / "apps" / "春联生成器.yml"
    project = tmp_path / "project"
    project.mkdir()
    site = tmp_path / "site"
    with FakeLLMServer() as server:
        server.add_rule("", {"top": "春回大地", "bottom": "福满人间", "banner": "万象更新"})
        (project / "playbook.toml").write_text(server.toml(), encoding="utf-8")
        done = cli("import", "dify", str(app), "-o", "playbooks/couplets.yaml", cwd=project)
        assert done.returncode == 0, done.stdout + done.stderr
        package = project / "playbooks" / "couplets_tools"
        info = site / "couplets_tools-0.1.0.dist-info"  # what `pip install -e` leaves: metadata + entry point
        info.mkdir(parents=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: couplets-tools\nVersion: 0.1.0\n",
                                       encoding="utf-8")
        (info / "entry_points.txt").write_text("[playbook.tools]\ncouplets = couplets_tools\n", encoding="utf-8")
        env = {"PYTHONPATH": os.pathsep.join([str(site), str(package), os.environ.get("PYTHONPATH", "")]),
               "FAKE_LLM_API_KEY": "sk-test"}
        inputs = yaml.safe_load((project / "playbooks" / "couplets.yaml").read_text(encoding="utf-8"))["inputs"]
        given = [f"{name}={spec['enum'][1] if spec.get('enum') else '新春'}" for name, spec in inputs.items()]
        args = [part for pair in given for part in ("-i", pair)]
        ran = cli("run", "playbooks/couplets.yaml", *args, cwd=project, env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    with sqlite3.connect(project / ".playbook" / "state.db") as db:
        (outputs,) = db.execute("SELECT outputs FROM runs").fetchone()
    assert "春回大地" in outputs and "新更象万" in outputs  # the model's JSON, through the user's own code


class CardApi:
    """The image-card API the app calls, on loopback: records each request, answers as the real one does."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                api.requests.append({"key": self.headers.get("X-API-Key"),
                                     "body": json.loads(self.rfile.read(length) or b"null")})
                data = json.dumps({"code": 0, "data": {"url": "https://img.example/card.png"}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1/pics"

    def __enter__(self) -> CardApi:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_an_http_request_and_a_parameter_extractor_reach_their_stand_ins(
        project_dir: Path, server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    allow_images(project_dir)
    allow_loopback(project_dir)
    with CardApi() as api:
        result, target = imported(CORPUS / "apps" / "Text to Card Iteration.yml", project_dir)
        text = target.read_text(encoding="utf-8")
        steps = yaml.safe_load(text)["steps"]
        request = next(s for s in steps if s.get("tool") == "http.request")
        secret = next(name for name in yaml.safe_load(text)["secrets"])
        monkeypatch.setenv(secret, "sk-card-key")
        # the app's API is a public service: point it at its stand-in, as a user would at a test server
        target.write_text(text.replace(request["with"]["url"], api.url), encoding="utf-8")
        outcome = run_playbook(target, {"author": "小编", "body_text": "今天的三条新闻"})
    assert outcome.status == "done", outcome.error
    assert any("提取参数" in r["prompt"] for r in server.requests)
    assert [r["key"] for r in api.requests] == ["sk-card-key"]  # the key from the environment, not the file
    assert any(secret in note for note in result.notes)


def test_the_import_lists_what_it_left_out_and_exits_1(tmp_path: Path) -> None:
    done = cli("import", "dify", str(CORPUS / "apps" / "思考助手.yml"), "-o", "pb.yaml", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "not translated: node" in done.stdout and "knowledge-retrieval" in done.stdout
    assert cli("validate", "pb.yaml", cwd=tmp_path).returncode == 0
    again = cli("import", "dify", str(CORPUS / "apps" / "思考助手.yml"), "-o", "pb.yaml", cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr  # an existing playbook is not overwritten


@pytest.mark.parametrize(("content", "said"), [
    ("app: {mode: chat, name: x}\nmodel_config: {}\n", "a Dify 'chat' app has no workflow to translate"),
    ("- just\n- a list\n", "not a Dify app export"),
    ("workflow: {graph: {nodes: [", "invalid YAML"),
])
def test_a_file_that_is_not_a_dify_workflow_is_refused_clearly(tmp_path: Path, content: str, said: str) -> None:
    (tmp_path / "app.yml").write_text(content, encoding="utf-8")
    done = cli("import", "dify", "app.yml", cwd=tmp_path)
    assert done.returncode == 2 and said in done.stderr, done.stderr
    assert "Traceback" not in done.stderr



def _app(nodes: list[dict[str, object]], edges: list[tuple[str, str, str]]) -> dict[str, object]:
    """A Dify 0.4+ app written from Dify's published node types (the corpus above has none of these nodes)."""
    return {"version": "0.5.0", "kind": "app", "app": {"name": "新节点", "mode": "workflow"}, "workflow": {"graph": {
        "nodes": [{"id": n["id"], "data": n} for n in nodes],
        "edges": [{"source": s, "target": t, "sourceHandle": h} for s, t, h in edges]}}}


@pytest.mark.parametrize(("config", "cron"), [
    ({"mode": "visual", "frequency": "weekly", "visual_config": {"time": "9:30 AM", "weekdays": ["mon", "fri"]}},
     "30 9 * * 1,5"),
    ({"mode": "visual", "frequency": "daily", "visual_config": {"time": "2:05 PM"}}, "5 14 * * *"),
    ({"mode": "visual", "frequency": "monthly", "visual_config": {"time": "08:00", "monthly_days": [1, "last"]}},
     "0 8 1,L * *"),
    ({"mode": "visual", "frequency": "hourly", "visual_config": {"on_minute": 15}}, "15 * * * *"),
    ({"mode": "cron", "cron_expression": "0 9 * * 1-5"}, "0 9 * * 1-5"),
])
def test_a_schedule_trigger_becomes_a_playbook_trigger(tmp_path: Path, config: dict[str, object], cron: str) -> None:
    app = _app([{"id": "t", "type": "trigger-schedule", "title": "每周", "timezone": "Asia/Shanghai", **config},
                {"id": "w", "type": "llm", "title": "写", "prompt_template": [{"role": "user", "text": "写周报"}]},
                {"id": "e", "type": "end", "title": "结束",
                 "outputs": [{"variable": "r", "value_selector": ["w", "text"]}]}],
               [("t", "w", "source"), ("w", "e", "source")])
    result = translate(app, "weekly")
    assert result.playbook["triggers"] == [{"cron": cron, "timezone": "Asia/Shanghai"}] and not result.left_out
    target = tmp_path / "weekly.yaml"
    target.write_text(playbook_text(result, "app.yml"), encoding="utf-8")
    load_and_validate(target)


def test_a_human_input_form_becomes_an_approval_of_its_fields(project_dir: Path, server: FakeLLMServer) -> None:
    app = _app([{"id": "s", "type": "start", "title": "开始", "variables": [
                    {"variable": "topic", "type": "text-input", "required": True}]},
                {"id": "d", "type": "llm", "title": "起草", "prompt_template": [
                    {"role": "user", "text": "为{{#s.topic#}}写一段文案"}]},
                {"id": "h", "type": "human-input", "title": "人工审核", "form_content": "请检查：{{#$output.copy#}}",
                 "inputs": [{"type": "paragraph", "output_variable_name": "copy",
                             "default": {"type": "variable", "value": ["d", "text"]}}],
                 "user_actions": [{"id": "ok", "title": "通过"}, {"id": "no", "title": "退回"}],
                 "timeout": 2, "timeout_unit": "day"},
                {"id": "p", "type": "llm", "title": "发布", "prompt_template": [
                    {"role": "user", "text": "发布：{{#h.copy#}}"}]}],
               [("s", "d", "source"), ("d", "h", "source"), ("h", "p", "ok")])
    result = translate(app, "reviewed")
    review = next(step for step in result.playbook["steps"] if "approval" in step)
    assert review["approval"] == {"title": "人工审核", "show": {"copy": "${{ steps.qi_cao.output }}"},
                                  "instructions": "请检查：", "editable": ["copy"], "timeout": "2d"}
    assert not result.left_out  # the second action leads nowhere: a rejection ending the run is what it did
    target = project_dir / "reviewed.yaml"
    target.write_text(playbook_text(result, "app.yml"), encoding="utf-8")
    server.add_rule("写一段文案", "春季新品八折")
    outcome = run_playbook(target, {"topic": "新品"})
    assert outcome.status == "waiting", outcome.error
    assert [r["prompt"] for r in server.requests] == ["为新品写一段文案"]  # 发布 waits for the reviewer


def test_numbers_compare_as_numbers_and_a_file_input_gives_its_name(project_dir: Path) -> None:
    """Dify compares `=` as numbers (a code node's 1 equals the '1' written in the condition) and passes a whole
    number to an `int` argument as an int; a file variable's name and extension come from the input's path."""
    code = "def main(level: int) -> dict:\n    return {'hit': 1 if ['a', 'b', 'c'][level] == 'c' else 0}\n"
    app = _app([{"id": "s", "type": "start", "title": "开始", "variables": [
                    {"variable": "doc", "type": "file", "required": True},
                    {"variable": "level", "type": "number", "required": True}]},
                {"id": "c", "type": "code", "title": "判断", "code": code, "code_language": "python3",
                 "variables": [{"variable": "level", "value_selector": ["s", "level"]}],
                 "outputs": {"hit": {"type": "number"}}},
                {"id": "i", "type": "if-else", "title": "命中？", "cases": [{"case_id": "true", "conditions": [
                    {"comparison_operator": "=", "value": "1", "variable_selector": ["c", "hit"]}]}]},
                {"id": "y", "type": "template-transform", "title": "命中", "template": "命中 {{ n }}{{ e }}",
                 "variables": [{"variable": "n", "value_selector": ["s", "doc", "name"]},
                               {"variable": "e", "value_selector": ["s", "doc", "extension"]}]},
                {"id": "n", "type": "template-transform", "title": "未命中", "template": "未命中",
                 "variables": []},
                {"id": "e", "type": "end", "title": "结束", "outputs": [
                    {"variable": "said", "value_selector": ["y", "output"]},
                    {"variable": "missed", "value_selector": ["n", "output"]}]}],
               [("s", "c", "source"), ("c", "i", "source"), ("i", "y", "true"), ("i", "n", "false"),
                ("y", "e", "source"), ("n", "e", "source")])
    result = translate(app, "numbers")
    assert not result.left_out, result.left_out
    package = plugin_package(result, project_dir)
    assert package is not None
    sys.path.insert(0, str(package))
    importlib.import_module(package.name)
    target = project_dir / "numbers.yaml"
    target.write_text(playbook_text(result, "app.yml"), encoding="utf-8")
    (project_dir / "周报.CSV").write_text("a\n1\n", encoding="utf-8")
    outcome = run_playbook(target, {"doc": str(project_dir / "周报.CSV"), "level": 2})
    assert outcome.status == "done", outcome.error
    assert outcome.outputs["said"] == "命中 周报.CSV.csv"  # level 2.0 reached the code as 2; 1 == '1'


def _rewrite_loop(count: int, break_at: int) -> dict[str, object]:
    """start → loop(write → 'perfect?' → exit loop | assign draft and tries += 1), broken off at `break_at`
    tries or after `count` passes → end. Written from Dify's loop node type (the corpus has no loop)."""
    inside = {"loop_id": "L", "isInLoop": True}
    return _app([{"id": "s", "type": "start", "title": "开始", "variables": [
                      {"variable": "topic", "type": "text-input", "required": True}]},
                 {"id": "L", "type": "loop", "title": "反复改写", "loop_count": count, "logical_operator": "and",
                  "start_node_id": "Ls", "loop_variables": [
                      {"label": "draft", "var_type": "string", "value_type": "constant", "value": "（无）"},
                      {"label": "tries", "var_type": "number", "value_type": "constant", "value": "0"}],
                  "break_conditions": [{"variable_selector": ["L", "tries"], "comparison_operator": "≥",
                                        "value": str(break_at), "varType": "number"}]},
                 {"id": "Ls", "type": "loop-start", "title": "", **inside},
                 {"id": "w", "type": "llm", "title": "改写", **inside, "prompt_template": [
                     {"role": "user", "text": "改写这版{{#s.topic#}}文案（第 {{#L.index#}} 轮）：{{#L.draft#}}"}]},
                 {"id": "i", "type": "if-else", "title": "够好了？", **inside, "cases": [{"case_id": "true",
                  "conditions": [{"comparison_operator": "contains", "value": "完美",
                                  "variable_selector": ["w", "text"]}]}]},
                 {"id": "x", "type": "loop-end", "title": "退出循环", **inside},
                 {"id": "a", "type": "assigner", "title": "记下", "version": "2", **inside, "items": [
                     {"variable_selector": ["L", "draft"], "input_type": "variable", "operation": "over-write",
                      "value": ["w", "text"]},
                     {"variable_selector": ["L", "tries"], "input_type": "constant", "operation": "+=",
                      "value": 1}]},
                 {"id": "e", "type": "end", "title": "结束", "outputs": [
                     {"variable": "draft", "value_selector": ["L", "draft"]},
                     {"variable": "tries", "value_selector": ["L", "tries"]}]}],
                [("s", "L", "source"), ("Ls", "w", "source"), ("w", "i", "source"), ("i", "x", "true"),
                 ("i", "a", "false"), ("L", "e", "source")])


@pytest.mark.parametrize(("count", "break_at", "replies", "calls", "outputs"), [
    (5, 3, ["稿子"], 3, {"draft": "稿子", "tries": 3}),  # the break condition, after the third pass
    (2, 9, ["稿子"], 2, {"draft": "稿子", "tries": 2}),  # loop_count passes at most
    (5, 9, ["初稿", "完美的稿子"], 2, {"draft": "初稿", "tries": 1}),  # "exit loop" before the assigner ran
])
def test_a_loop_becomes_a_goto_loop_that_ends_as_dify_ends_it(project_dir: Path, server: FakeLLMServer,
                                                             count: int, break_at: int, replies: list[str],
                                                             calls: int, outputs: dict[str, object]) -> None:
    for reply in replies[:-1]:
        server.add_rule("改写", reply, times=1)
    server.add_rule("改写", replies[-1])
    result = translate(_rewrite_loop(count, break_at), "rewrite")
    assert not result.left_out, result.left_out
    target = project_dir / "rewrite.yaml"
    target.write_text(playbook_text(result, "app.yml"), encoding="utf-8")
    outcome = run_playbook(target, {"topic": "春季上新"})
    assert outcome.status == "done", outcome.error
    assert outcome.outputs == outputs
    prompts = [r["prompt"] for r in server.requests]
    assert len(prompts) == calls
    assert prompts[0] == "改写这版春季上新文案（第 0 轮）：（无）"
    assert prompts[1] == f"改写这版春季上新文案（第 1 轮）：{replies[0]}"  # the variable the last pass assigned
