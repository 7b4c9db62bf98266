"""What validate can know, it checks before any paid call: each mistake below is refused by `playbook validate` (and
by `playbook run`, before a run exists) with file:line:col, exit 2, and a sentence that says how to fix it."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.testing import FakeLLMServer
from tests.conftest import ROOT, cli, write_playbook

pytestmark = pytest.mark.usefixtures("english")  # these tests check what the messages say, in English

# name → (playbook, the line:col and the words validate must print)
MISTAKES: dict[str, tuple[str, str]] = {
    "undeclared_output_field": ("""
name: m
steps:
  - {id: draft, llm: {prompt: 写, output: {title: string, content: string}}}
  - {id: send, llm: {prompt: "发 ${{ steps.draft.output.body }}"}}
""", "5:30: step 'send': `steps.draft.output` has no field 'body' (valid: content, title)"),
    "nested_output_field": ("""
name: m
steps:
  - {id: draft, llm: {prompt: 写, output: {meta: {tags: [string], lang: string}}}}
outputs: {lang: "${{ steps.draft.output.meta.langg }}"}
""", "5:17: outputs: `steps.draft.output.meta` has no field 'langg' (did you mean 'lang'?)"),
    "field_of_text_output": ("""
name: m
steps:
  - {id: draft, llm: {prompt: 写}}
outputs: {t: "${{ steps.draft.output.summary }}"}
""", "step 'draft' has no `output:` schema, so its output is text without fields"),
    "branch_read_in_outputs": ("""
name: m
inputs: {long: {type: boolean, default: false}}
steps:
  - id: route
    switch: {cases: [{if: "${{ inputs.long }}", goto: long}], default: short}
  - {id: long, llm: {prompt: 长, output: {body: string}}, goto: end}
  - {id: short, llm: {prompt: 短, output: {body: string}}}
outputs: {body: "${{ steps.long.output.body }}"}
""", "9:17: outputs: reads `steps.long.output.body`, but step 'long' does not run on every path to the end"),
    "branch_read_in_a_join": ("""
name: m
inputs: {long: {type: boolean, default: false}}
steps:
  - id: route
    switch: {cases: [{if: "${{ inputs.long }}", goto: long}], default: short}
  - {id: long, llm: {prompt: 长, output: {body: string}}, goto: join}
  - {id: short, llm: {prompt: 短, output: {body: string}}}
  - {id: join, needs: [long, short], llm: {prompt: "合 ${{ steps.short.body }}"}}
""", "9:52: step 'join': reads `steps.short.body`, but step 'short' does not run on every path to 'join'"),
    "map_over_text": ("""
name: m
inputs: {keywords: {type: string, default: "AI,手机"}}
steps:
  - {id: scan, map: "${{ inputs.keywords }}", llm: {prompt: "搜 ${{ item }}"}}
""", "5:21: step 'scan': map over input 'keywords', which is declared string, not a list; for comma-separated "
     "text, map over `${{ inputs.keywords.split(',') }}`"),
    "tool_arguments_together": ("""
name: m
steps:
  - {id: post, tool: http.request, with: {url: "http://127.0.0.1:9/x", method: POST, json: {a: 1}, form: {b: 2}}}
""", "4:42: step 'post': http.request: give either json or form as the body, not both"),
    "unknown_filter": ("""
name: m
steps:
  - {id: a, llm: {prompt: 写}}
  - {id: b, llm: {prompt: "${{ steps.a.output | split_lines }}"}}
""", "5:27: step 'b': unknown filter 'split_lines' (for text, call its method instead: `value.splitlines()`)"),
    "unknown_test": ("""
name: m
steps:
  - {id: a, when: "${{ 3 is oddd }}", llm: {prompt: 写}}
""", "4:19: step 'a': unknown test 'oddd' (did you mean 'odd'?)"),
    "unknown_model_alias": ("""
name: m
steps:
  - {id: look, model: vision, llm: {prompt: 看图}}
""", "4:23: step 'look': model 'vision' is not defined in playbook.toml (valid: default, local); add a "
     "[models.vision] section"),
    "needs_by_title": ("""
name: m
steps:
  - {id: load, title: 读取评论, llm: {prompt: 读}}
  - {id: sum, needs: [读取评论], llm: {prompt: 总结}}
""", "5:23: step 'sum' needs: unknown step '读取评论' — '读取评论' is the title of step 'load'; write its id, 'load'"),
    "step_indented_deeper": ("""
name: m
steps:
  - id: a
    llm: {prompt: 写}
   - id: b
    llm: {prompt: 写}
""", "6:4: this line is indented deeper than the list it belongs to (line 4: `- id: a`); the items of one list — "
     "steps under `steps:` too — start with `- ` at the same indentation"),
    "key_indented_deeper": ("""
name: m
steps:
  - id: a
    tool: file.read
      with: {path: a.md}
""", "6:11: this line is indented deeper than line 5 (`tool: file.read`), so YAML reads it as more of that value; "
     "line `with:` up with the key above"),
    "words_inside_an_expression": ("""
name: m
inputs: {x: {type: string}}
steps:
  - {id: a, llm: {prompt: "看 ${{ inputs.x 的内容 }}"}}
""", "5:27: step 'a': inside ${{ }}, '的内容' cannot follow what comes before it"),
    "a_requirement_reading_a_step": ("""
name: m
inputs: {feeds: {type: list, default: []}}
requires:
  - {that: "${{ inputs.feeds or steps.a.output }}", message: 给一个来源}
steps:
  - {id: a, llm: {prompt: hi}}
""", "5:12: requires: reads 'steps.a.output', but a requirement is checked before the run, from the inputs alone"),
    "min_items_on_text": ("""
name: m
inputs: {word: {type: string, min_items: 1}}
steps:
  - {id: a, llm: {prompt: hi}}
""", "3:16: inputs.word: min_items applies to list inputs; this input is a string"),
    "a_trigger_that_breaks_a_requirement": ("""
name: m
inputs: {feeds: {type: list, default: []}, pages: {type: list, default: []}}
requires:
  - {that: "${{ inputs.feeds or inputs.pages }}", message: 至少给一个 feeds 或 pages}
triggers:
  - {cron: "0 9 * * *", inputs: {pages: []}}
steps:
  - {id: a, llm: {prompt: hi}}
""", "trigger 1: 至少给一个 feeds 或 pages"),
}


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_validate_refuses_with_the_place_and_the_fix(project_dir: Path, name: str) -> None:
    text, expected = MISTAKES[name]
    path = write_playbook(project_dir, text)
    done = cli("validate", str(path), cwd=project_dir)
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "pydantic" not in done.stderr and "[type=" not in done.stderr
    ran = cli("run", str(path), cwd=project_dir)
    assert ran.returncode == 2 and expected in ran.stderr, ran.stderr
    assert not (project_dir / ".playbook" / "runs").exists()  # no run was created


GUARDED = """
name: guarded
inputs: {long: {type: boolean, default: false}}
steps:
  - id: route
    switch: {cases: [{if: "${{ inputs.long }}", goto: long}], default: short}
  - {id: long, llm: {prompt: 长, output: {body: string}}, goto: join}
  - {id: short, llm: {prompt: 短, output: {body: string}}}
  - id: join
    needs: [long, short]
    llm: {prompt: "合 ${{ steps.long.output.body if steps.long.status == 'done' else steps.short.output.body }}"}
  - {id: tail, llm: {prompt: "尾 ${{ steps.join.output }} ${{ steps.route.output.goto }}"}}
outputs:
  body: "${{ steps.long.output.body | default(steps.short.output.body) }}"
  status: "${{ steps.long.status }}"
  joined: "${{ steps.tail.output }}"
"""


def test_guarded_reads_and_reads_of_steps_surely_run_pass(project_dir: Path, server: FakeLLMServer) -> None:
    server.add_rule(r"^(长|短)\n", {"body": "正文"})
    path = write_playbook(project_dir, GUARDED)
    assert cli("validate", str(path), cwd=project_dir).returncode == 0
    done = cli("run", str(path), cwd=project_dir)
    assert done.returncode == 0, done.stderr
    assert any(r["prompt"] == "合 正文" for r in server.requests), [r["prompt"] for r in server.requests]


INPUTS = """
name: table_reader
inputs: {table: {type: file}, top: {type: integer, default: 3}}
steps:
  - {id: load, tool: sheet.read, with: {path: "${{ inputs.table }}"}}
  - {id: sum, llm: {prompt: "共 ${{ steps.load.count }} 行"}}
"""


@pytest.mark.parametrize(("given", "content", "expected"), [
    (["table=nope.csv"], None, "input 'table': file 'nope.csv' does not exist"),
    (["table=t.csv", "top=三"], b"a,b\n1,2\n", "input 'top': expected an integer, got '三'"),
    (["table=t.csv"], b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\x00\x80\x81\x82", "is neither UTF-8 nor GBK"),
    (["table=t.csv"], b"a,b\n", "'t.csv' has no rows under its header"),
    (["table=t.xlsx"], b"a,b\n1,2\n", "'t.xlsx' is not a readable xlsx workbook"),
])
def test_wrong_inputs_are_refused_before_a_run_exists(project_dir: Path, server: FakeLLMServer, given: list[str],
                                                      content: bytes | None, expected: str) -> None:
    path = write_playbook(project_dir, INPUTS)
    if content is not None:
        (project_dir / given[0].split("=")[1]).write_bytes(content)
    done = cli("run", str(path), *[a for g in given for a in ("-i", g)], cwd=project_dir)
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr, done.stderr
    assert "playbook resume" not in done.stderr + done.stdout and "运行 id" not in done.stdout
    assert not (project_dir / ".playbook" / "runs").exists() and not server.requests


def test_a_failure_a_resume_can_fix_keeps_the_hint(project_dir: Path, server: FakeLLMServer) -> None:
    server.faults.auth_error = True  # the provider refuses the key: fixed outside the playbook, then resumed
    path = write_playbook(project_dir, "name: once\nsteps:\n  - {id: a, llm: {prompt: 写}}\n")
    done = cli("run", str(path), "--run-id", "r1", cwd=project_dir)
    assert done.returncode == 1 and "playbook resume r1" in done.stderr, done.stderr
    server.faults.auth_error = False
    assert cli("resume", "r1", cwd=project_dir).returncode == 0


def test_a_sub_playbook_that_asks_for_approval_is_refused_before_the_run(project_dir: Path,
                                                                        server: FakeLLMServer) -> None:
    write_playbook(project_dir, """
name: child
steps:
  - {id: draft, llm: {prompt: 写}}
  - {id: check, approval: {title: 审, show: "${{ steps.draft.output }}"}}
""", "child.yaml")
    path = write_playbook(project_dir, """
name: parent
steps:
  - {id: paid, llm: {prompt: 先花钱}}
  - {id: sub, playbook: child.yaml}
""")
    done = cli("run", str(path), cwd=project_dir)
    assert done.returncode == 2 and "sub-playbook 'child.yaml' asks for approval (step 'check')" in done.stderr
    assert not server.requests  # used to fail after the parent's first call was paid for


@pytest.mark.parametrize(("given", "expected"), [
    (["keywords=AI,手机"], "没有可扫描的来源：至少给一个 hot_lists、feeds 或 pages"),
    (["keywords=[]", "feeds=https://example.com/rss"], "input 'keywords': give at least 1 item (got 0)"),
])
def test_nothing_to_work_on_is_refused_before_any_model_call(project_dir: Path, server: FakeLLMServer,
                                                             given: list[str], expected: str) -> None:
    """trend_scan with no source used to end 已完成 with a report the model made up from nothing."""
    done = cli("run", str(ROOT / "playbooks" / "trend_scan.yaml"), *[a for g in given for a in ("-i", g)],
               cwd=project_dir)
    assert done.returncode == 2 and expected in done.stderr, done.stderr
    assert not (project_dir / ".playbook" / "runs").exists() and not server.requests


@pytest.mark.parametrize(("declared", "argument", "refused"), [
    ("{type: string}", "k", "whole number"),  # a text input for a number argument
    ("{type: string}", "rows", "list"),  # a text input for the list of rows
    ("{type: integer}", "k", None),
    ("{type: list}", "rows", None),  # a list's items are not declared: left to the run
])
def test_a_tool_argument_given_a_whole_input_of_a_type_it_refuses_is_refused_before_the_run(
        tmp_path: Path, english: None, declared: str, argument: str, refused: str | None) -> None:
    """Before, validate left every templated argument to the run, which failed at the step after the steps before
    it (and their paid calls) had run."""
    from runner.dsl.validate import load_and_validate
    from runner.errors import PlaybookError

    other = {"k": "rows: [甲, 乙, 丙]", "rows": "k: 2"}[argument]
    path = write_playbook(tmp_path, f"""name: typed
inputs: {{given: {declared}}}
steps:
  - {{id: ask, llm: {{prompt: 写}}}}
  - {{id: group, tool: text.cluster, with: {{{argument}: "${{{{ inputs.given }}}}", {other}}}}}
""")
    if refused is None:
        load_and_validate(path)
        return
    with pytest.raises(PlaybookError) as caught:
        load_and_validate(path)
    [problem] = [str(d) for d in caught.value.diagnostics]
    assert problem.startswith(f"{path}:5:")
    assert f"argument '{argument}' of 'text.cluster' is given input 'given'" in problem


def test_an_input_whose_choices_the_argument_takes_passes_and_one_it_does_not_is_refused(
        tmp_path: Path, english: None) -> None:
    from runner.dsl.validate import load_and_validate
    from runner.errors import PlaybookError

    text = """name: choices
inputs: {agg: {type: string, default: sum, enum: [sum, mean%s]}}
steps:
  - {id: c, tool: metrics.compare, with: {rows: [], values: [x], agg: "${{ inputs.agg }}"}}
"""
    load_and_validate(write_playbook(tmp_path, text % ""))
    with pytest.raises(PlaybookError, match=r"argument 'agg' of 'metrics\.compare' is given input 'agg'"):
        load_and_validate(write_playbook(tmp_path, text % ", median", "median.yaml"))


@pytest.mark.parametrize(("output", "refused"), [("", True), (", output: {rows: [{title: string}]}", False)])
def test_a_text_answer_given_to_an_argument_that_takes_no_text_is_refused(
        tmp_path: Path, english: None, output: str, refused: bool) -> None:
    """`sheet.write rows: ${{ steps.ask.output }}` with `ask` answering text failed the run after the paid call."""
    from runner.dsl.validate import load_and_validate
    from runner.errors import PlaybookError

    read = "steps.ask.output" if refused else "steps.ask.output.rows"
    path = write_playbook(tmp_path, f"""name: saved
steps:
  - {{id: ask, llm: {{prompt: 列出三个标题{output}}}}}
  - {{id: save, tool: sheet.write, with: {{path: out.xlsx, rows: "${{{{ {read} }}}}"}}}}
""")
    if not refused:
        load_and_validate(path)
        return
    with pytest.raises(PlaybookError, match=r"argument 'rows' of 'sheet\.write' is given `steps\.ask\.output`, "
                                            r"the text step 'ask' answers"):
        load_and_validate(path)


def test_a_map_over_a_text_answer_is_refused_and_over_its_declared_list_passes(tmp_path: Path, english: None) -> None:
    """`map: ${{ steps.ask.output }}` of an llm step without `output:` failed the run after the paid call."""
    from runner.dsl.validate import load_and_validate
    from runner.errors import PlaybookError

    text = """name: listed
steps:
  - {id: ask, llm: {prompt: 列出三个标题%s}}
  - {id: each, map: "${{ %s }}", template: "标题：${{ item }}"}
"""
    with pytest.raises(PlaybookError, match=r"map over `steps\.ask\.output`, the text step 'ask' answers"):
        load_and_validate(write_playbook(tmp_path, text % ("", "steps.ask.output")))
    load_and_validate(write_playbook(tmp_path, text % (", output: {titles: [string]}", "steps.ask.output.titles"),
                                     "listed.yaml"))
