"""An undefined value anywhere a template is evaluated ends the run failed (exit 1), naming the step or output, the
field and the expression — never a traceback, never `internal error:`, never a prompt holding `Undefined`."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.dsl import templates
from runner.testing import FakeLLMServer
from tests.conftest import cli, write_playbook

MISSING = "[{'x': 1}] | map(attribute='y') | list"

CASES = {
    "outputs": ("""
steps:
  - {id: a, llm: {prompt: 你好}}
outputs: {ys: "${{ %s }}"}
""", "outputs.ys"),
    "with": ("""
steps:
  - {id: a, tool: file.write, with: {path: x.md, content: "${{ %s }}"}}
""", "step 'a': with.content"),
    "prompt": ("""
steps:
  - {id: a, llm: {prompt: "看看 ${{ %s }}"}}
""", "step 'a': llm.prompt"),
    "map": ("""
steps:
  - {id: a, map: "${{ %s }}", llm: {prompt: "第 ${{ item }} 条"}}
""", "step 'a': map"),
    "when": ("""
steps:
  - {id: a, when: "${{ %s }}", llm: {prompt: 你好}}
""", "step 'a': when"),
    "item_field": ("""
steps:
  - {id: a, map: "${{ [{'x': 1}] }}", llm: {prompt: "第 ${{ item.y }} 条"}}
""", "step 'a': llm.prompt"),
}


@pytest.mark.parametrize("where", sorted(CASES))
def test_an_undefined_value_fails_the_run_naming_where(project_dir: Path, server: FakeLLMServer, where: str) -> None:
    body, named = CASES[where]
    path = write_playbook(project_dir, f"name: undefined_{where}\n" + body.replace("%s", MISSING))
    done = cli("run", str(path), cwd=project_dir)
    text = done.stdout + done.stderr
    assert done.returncode == 1, text
    named = named.replace("step 'a': ", "步骤 'a'：")
    assert "× 失败" in done.stderr and f"{named}：无法计算" in done.stderr, done.stderr
    assert "没有字段 'y'（可用：x）" in done.stderr
    assert "Traceback" not in text and "internal error" not in text and "UndefinedError" not in text
    assert "playbook resume" not in text and "改好后用 playbook run 重新运行" in done.stderr
    assert not any("Undefined" in r["prompt"] for r in server.requests)
    listing = cli("runs", "list", cwd=project_dir)
    assert "失败" in listing.stdout and "已中断" not in listing.stdout


def test_iterators_become_lists_and_undefined_inside_text_fails() -> None:
    assert templates.render("${{ [1, 2] | map('string') }}", {}) == ["1", "2"]
    with pytest.raises(templates.TemplateError, match="没有字段 'y'"):
        templates.render("前缀 ${{ rows | map(attribute='y') | list }}", {"rows": [{"x": 1}]})
    with pytest.raises(templates.TemplateError, match=r"没有字段 'conten'（是不是 'content'？）"):
        templates.render("${{ d.conten }}", {"d": {"content": 1}})
    with pytest.raises(templates.TemplateError, match="这个值是 null"):
        templates.render("${{ d.body }}", {"d": None})
    with pytest.raises(templates.TemplateError) as caught:
        templates.render({"a": [1, {"b": "${{ nope.x }}"}]}, {"nope": {}})
    assert caught.value.where("with") == "with.a[1].b"
