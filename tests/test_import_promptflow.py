"""`playbook import promptflow` on four flows of microsoft/promptflow (tests/fixtures/import/promptflow): each
imports, validates and matches its reviewed snapshot; the python nodes run the user's functions unchanged (a stand-in
for the retired `promptflow` package marks them); `activate` skips the nodes the flow skipped; role markers written
in a loop become the messages the model gets."""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
from pathlib import Path

import pytest
import yaml

from runner.dsl.validate import load_and_validate
from runner.importers import promptflow
from runner.importers.dify import Imported
from runner.importers.write import playbook_text, plugin_package
from runner.testing import FakeLLMServer
from tests.conftest import ROOT, cli, run_playbook
from tests.test_import_dify_runs import StandInApi

pytestmark = pytest.mark.usefixtures("english")

CORPUS = ROOT / "tests" / "fixtures" / "import" / "promptflow"
FLOWS = sorted(p.parent for p in CORPUS.glob("*/flow.dag.yaml"))


def imported(flow: Path, folder: Path) -> tuple[Imported, Path]:
    """The flow imported into `folder` as `playbook import promptflow FLOW -o folder/<flow>.yaml` does, its
    python-node tools registered in this process (the entry point itself is tested with the Dify import)."""
    target = folder / f"{flow.name}.yaml"
    result = promptflow.translate(flow / "flow.dag.yaml", flow.name.replace("-", "_"))
    package = plugin_package(result, folder)
    target.write_text(playbook_text(result, flow.name), encoding="utf-8")
    if package is not None:
        sys.path.insert(0, str(package))
        importlib.import_module(package.name)
    return result, target


@pytest.mark.parametrize("flow", FLOWS, ids=[p.name for p in FLOWS])
def test_a_flow_imports_validates_and_matches_its_snapshot(flow: Path, tmp_path: Path) -> None:
    result, target = imported(flow, tmp_path)
    load_and_validate(target)
    expected = CORPUS / "expected" / target.name
    written = target.read_text(encoding="utf-8")
    if os.environ.get("UPDATE_IMPORT_SNAPSHOTS"):
        expected.parent.mkdir(exist_ok=True)
        expected.write_text(written, encoding="utf-8")
    assert written == expected.read_text(encoding="utf-8"), f"{target.name} changed: review it, then update"
    for node in result.code:  # the user's file, unchanged
        assert (tmp_path / f"{result.name}_tools" / f"{result.name}_tools" / f"{node.step}.py").read_text(
            encoding="utf-8").rstrip() == node.code.rstrip()


def test_activate_runs_only_the_node_the_flow_chose(project_dir: Path, server: FakeLLMServer) -> None:
    server.add_rule("The user's query is", "product_info")
    _, target = imported(CORPUS / "conditional-flow-for-switch", project_dir)
    outcome = run_playbook(target, {"query": "这个产品是谁生产的？"})
    assert outcome.status == "done", outcome.error
    assert outcome.outputs == {"response": "This product is produced by Microsoft."}  # the user's own functions
    assert [r["messages"][0]["role"] for r in server.requests] == ["system"]  # one LLM call, the classifier


def test_role_markers_in_a_loop_become_the_chat_turns(project_dir: Path, server: FakeLLMServer) -> None:
    server.add_rule("退货要多久", "三天内到账")
    _, target = imported(CORPUS / "chat-basic", project_dir)
    history = [{"inputs": {"question": "能退货吗"}, "outputs": {"answer": "可以"}}]
    outcome = run_playbook(target, {"question": "退货要多久", "chat_history": history})
    assert outcome.status == "done", outcome.error
    assert outcome.outputs == {"answer": "三天内到账"}
    (request,) = server.requests
    assert [(m["role"], m["content"]) for m in request["messages"]] == [
        ("system", "You are a helpful assistant."), ("user", "能退货吗"), ("assistant", "可以"),
        ("user", "退货要多久")]
    assert request["body"]["max_tokens"] == 256 and request["body"]["temperature"] == 0.7


@pytest.mark.parametrize("flow", FLOWS, ids=[p.name for p in FLOWS])
def test_a_flow_runs_end_to_end_on_its_own_data(flow: Path, project_dir: Path, server: FakeLLMServer) -> None:
    """The first row of the flow's own data.jsonl (its inputs' defaults where it has none); pages it fetches are
    on a loopback stand-in; the model's classification is one of the flow's categories."""
    server.add_rule("The user's query is", "order_search")  # conditional-flow-for-switch's classifier
    server.add_rule("Classify the following", '{"category": "App", "evidence": "Both"}')  # web-classification
    with StandInApi(None, on_get=False) as api:
        _, target = imported(flow, project_dir)
        text = target.read_text(encoding="utf-8")
        target.write_text(re.sub(r"https?://[^\s'\"}]+", api.base + "/page", text), encoding="utf-8")
        declared = yaml.safe_load(text).get("inputs") or {}
        rows = (flow / "data.jsonl").read_text(encoding="utf-8").splitlines()
        row = json.loads(rows[0]) if rows else {}
        given = {name: re.sub(r"https?://\S+", api.base + "/page", row[name]) if isinstance(row[name], str)
                 else row[name] for name in declared if name in row}  # its URLs on the stand-in too
        outcome = run_playbook(target, given)
    assert outcome.status == "done", outcome.error
    assert outcome.outputs and all(value not in (None, "", [], {}) for value in outcome.outputs.values()), \
        outcome.outputs
    assert server.requests
    if flow.name == "web-classification":  # the user's fetch (requests + bs4) read the stand-in's page
        assert api.requests == ["GET /page"]
        assert any("双十一活动规则" in r["prompt"] for r in server.requests)


def test_a_node_whose_package_is_missing_fails_saying_what_to_install(project_dir: Path) -> None:
    flow = project_dir / "flow"
    flow.mkdir()
    (flow / "flow.dag.yaml").write_text(
        "inputs:\n  text: {type: string}\noutputs:\n  out: {type: string, reference: '${clean.output}'}\n"
        "nodes:\n- name: clean\n  type: python\n  source: {type: code, path: clean.py}\n"
        "  inputs: {text: '${inputs.text}'}\n", encoding="utf-8")
    (flow / "clean.py").write_text("import emoji_cleaner_kit\nfrom promptflow.core import tool\n\n\n@tool\n"
                                   "def clean(text: str) -> str:\n"
                                   "    return emoji_cleaner_kit.strip(text)\n", encoding="utf-8")
    result, target = imported(flow, project_dir)
    outcome = run_playbook(target, {"text": "好评👍"})
    assert outcome.status == "failed"
    assert "imports 'emoji_cleaner_kit', which is not installed: pip install emoji-cleaner-kit" in str(outcome.error)
    assert result.packages == ["emoji-cleaner-kit"] and result.left_out == []


def test_variants_data_and_evaluation_become_an_eval_suite(tmp_path: Path) -> None:
    done = cli("import", "promptflow", str(CORPUS / "web-classification"), "-o", "playbooks/web.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "compares it with variant_1" in done.stdout and "pip install -e" in done.stdout
    suite = yaml.safe_load((tmp_path / "evals" / "web.yaml").read_text(encoding="utf-8"))
    assert suite["playbook"] == "../playbooks/web.yaml"
    assert [v["name"] for v in suite["variants"]["summarize_text_content"]] == ["variant_0", "variant_1"]
    assert suite["variants"]["summarize_text_content"][1]["max_tokens"] == 256
    assert suite["dataset"]["columns"] == {"inputs.url": "url", "vars.answer": "answer"}  # run.yml's mapping
    assert suite["defaults"]["assert"][0] | {"name": None} == {"name": None, "that": "outputs.category",
                                                                "equals": "${{ vars.answer }}"}
    data = (CORPUS / "web-classification" / "data.jsonl").read_text(encoding="utf-8")
    assert (tmp_path / "evals" / "data" / "web.jsonl").read_text(encoding="utf-8") == data
    again = cli("import", "promptflow", str(CORPUS / "web-classification"), "-o", "playbooks/web.yaml", cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr
    missing = cli("import", "promptflow", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert missing.returncode == 2 and "no such flow file" in missing.stderr


def test_the_suite_loads_with_its_variants_validated(tmp_path: Path) -> None:
    from runner.evals.load import load_suite
    from runner.importers.write import eval_suite

    result, target = imported(CORPUS / "web-classification", tmp_path)
    suite = load_suite(eval_suite(result, target, tmp_path / "evals"))
    assert set(suite.variants) == {"summarize_text_content=variant_0", "summarize_text_content=variant_1"}
    assert len(suite.cases) == 2 * len((CORPUS / "web-classification" / "data.jsonl").read_text().splitlines())


def test_a_yaml_bomb_or_an_oversized_file_is_refused_quickly(tmp_path: Path) -> None:
    lines, previous = ["a: &a [x, x, x, x, x, x, x, x, x, x]"], "a"
    for name in "bcdefgh":  # 10**8 values once expanded
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]")
        previous = name
    (tmp_path / "flow.dag.yaml").write_text("\n".join([*lines, "nodes: []"]) + "\n", encoding="utf-8")
    bomb = cli("import", "promptflow", ".", "-o", "x.yaml", cwd=tmp_path, timeout=120)
    assert bomb.returncode == 2 and "YAML bomb" in bomb.stderr, bomb.stderr
    with (tmp_path / "huge.yml").open("wb") as huge:
        huge.truncate(21 * 2**20)
    big = cli("import", "dify", "huge.yml", cwd=tmp_path, timeout=120)
    assert big.returncode == 2 and "21 MB is not a Dify export" in big.stderr, big.stderr
