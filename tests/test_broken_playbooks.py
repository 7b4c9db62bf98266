"""Every broken playbook in tests/broken gives its expected `file:line:col: message`, exit 2, no traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runner.cli import app
from tests.conftest import cli

pytestmark = pytest.mark.usefixtures("english")  # these tests check what the messages say, in English

BROKEN = sorted((Path(__file__).parent / "broken").glob("*.yaml"))


def expectation(path: Path) -> str:
    match = re.search(r"^# expect: (.+)$", path.read_text(encoding="utf-8"), re.MULTILINE)
    assert match, f"{path.name} has no '# expect:' line"
    return match.group(1).strip()


def test_there_are_at_least_40_cases() -> None:
    assert len(BROKEN) >= 40


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_playbook_is_reported_at_its_source(path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", str(path)])
    expected = f"{path}:{expectation(path)}"
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line.removeprefix("error ") for line in result.output.splitlines()]
    assert any(line.startswith(expected) for line in lines), f"wanted {expected!r} in:\n{result.output}"


def test_every_broken_playbook_is_reported_in_chinese_at_the_same_place() -> None:
    """The same corpus under zh_CN: each message at the same file:line:col, with no English sentence left (DSL
    words, quoted names and code are what a Chinese user reads as written)."""
    from runner import i18n
    from tests.test_chinese_throughout import english_words

    problems = []
    i18n.use("zh_CN")
    try:
        for path in BROKEN:
            output = CliRunner().invoke(app, ["validate", str(path)]).output
            where = f"{path}:{expectation(path).split(' ', 1)[0]}"
            lines = [line.removeprefix("错误 ") for line in output.splitlines()]
            if not any(line.startswith(where) for line in lines):
                problems.append(f"{path.name}: not at {where}: {output}")
            said = QUOTED.sub(" ", output.replace(str(path), " "))
            written = set(re.findall(r"[A-Za-z_]+", path.read_text(encoding="utf-8")))  # the names the user wrote
            problems += [f"{path.name}: {word}" for word in english_words(said)
                         if not DSL_WORD.search(word) and word.split("'")[1] not in written]
    finally:
        i18n.use("en")
    assert problems == [], "\n".join(problems)


QUOTED = re.compile(r"'[^'\n]*'|`[^`\n]*`|\{[^{}\n]*\}|\[[^\[\]\n]*\]|\S+:(?= )|\b\w+\.\w+\b")
# the playbook language's own keys and values, written as they are in a Chinese sentence
DSL_WORD = re.compile(r"^'(?:map|needs|goto|switch|requires|llm|tool|with|output|as|batch|concurrency|inputs?|steps?|"
                      r"name|when|env|secrets|default|cases|enum|schema|items|type|list|object|string|true|false|null|"
                      r"fail|skip|end|approval|agent|on_error|max_visits|max_failures|min_items|cron|tab|Tab|null|"
                      r"prompt|system|title|show|editable|timeout|sandbox|filter|UTF|MB|byte|IANA|Asia|Shanghai|"
                      r"or|and|if|else|default|split|any|boolean|integer|number)'")


def test_real_cli_prints_no_traceback_and_exits_2(tmp_path: Path) -> None:
    for name in ("sandbox_mro.yaml", "yaml_tab_indent.yaml", "unknown_tool.yaml"):
        path = Path(__file__).parent / "broken" / name
        done = cli("run", str(path), cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr + done.stdout
        assert f"{path}:{expectation(path)}" in done.stderr


PYDANTIC_WORDING = re.compile(r"errors\.pydantic\.dev|\[type=|Input should be|instance of [A-Z]|validation error for|"
                              r"\b[A-Z][a-z]+(?:Spec|Input|Model|Config)\b|model_type|literal\[|function-after")
BROKEN_SUITES = sorted((Path(__file__).parent / "broken_suites").glob("*.yaml"))


def test_no_message_in_the_corpus_shows_pydantic_internals() -> None:
    """Every broken playbook, suite, inputs file and dataset row is reported in the user's words."""
    for path in BROKEN:
        result = CliRunner().invoke(app, ["validate", str(path)])
        assert not PYDANTIC_WORDING.search(result.output), f"{path.name}: {result.output}"
    for path in BROKEN_SUITES:
        result = CliRunner().invoke(app, ["eval", str(path), "--replay"])
        assert result.exit_code == 2, result.output
        assert f"{path}:{expectation(path)}" in result.output.replace("\n", " ") or \
            expectation(path) in result.output, result.output
        assert not PYDANTIC_WORDING.search(result.output), f"{path.name}: {result.output}"
    assert len(BROKEN_SUITES) >= 3


def test_text_in_another_tools_template_syntax_is_a_warning_with_the_expression_meant(tmp_path: Path) -> None:
    path = tmp_path / "dify.yaml"
    path.write_text("""name: t
inputs: {product: {type: string, default: 记账本}}
steps:
  - id: draft
    llm: {prompt: "为 {{ product }} 写一句口号", output: {slogan: string}}
  - id: polish
    llm: {prompt: "润色：{{#draft.slogan#}}"}
""", encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert f"warning {path}:5:19: '{{{{ product }}}}' is not an expression here and is sent as written; " \
           "did you mean '${{ inputs.product }}'?" in result.output
    assert "'{{#draft.slogan#}}' is not an expression here and is sent as written; did you mean " \
           "'${{ steps.draft.output.slogan }}'?" in result.output


def test_playbook_tools_prints_required_for_required_arguments() -> None:
    result = CliRunner().invoke(app, ["tools"])
    assert "PydanticUndefined" not in result.output
    assert "texts: list (required)" in result.output and "extra_words: list (default [])" in result.output
