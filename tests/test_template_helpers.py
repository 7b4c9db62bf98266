"""The expression helpers translated workflows need — regular expressions, JSON, split, dates in the project's
timezone — give the right values and stay inside the sandbox: a backtracking pattern ends at the render's time
limit, deep JSON and bad input are clear errors."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from runner.dsl.templates import TemplateError, render
from tests.conftest import run_playbook, write_playbook

pytestmark = pytest.mark.usefixtures("english")


@pytest.mark.parametrize(("expression", "value"), [
    ("'订单号 A123 已发货' | regex_search('[A-Z]\\\\d+')", "A123"),
    ("'订单号 A123' | regex_search('订单号 ([A-Z])(\\\\d+)', 2)", "123"),
    ("'没有' | regex_search('\\\\d+')", None),
    ("'a1b22c333' | regex_findall('\\\\d+')", ["1", "22", "333"]),
    ("'k=v; x=y' | regex_findall('(\\\\w)=(\\\\w)')", [["k", "v"], ["x", "y"]]),
    ("'电话 138-0000-1111' | regex_replace('\\\\d{4}-(\\\\d{4})$', '****-\\\\1')", "电话 138-****-1111"),
    ("'ABC abc' | regex_replace('abc', 'x', ignorecase=true)", "x x"),
    ("'{\"a\": [1, 2]}' | from_json", {"a": [1, 2]}),
    ("{'名': '值'} | to_json", '{"名": "值"}'),
    ("'物流,客服,,价格' | split(',')", ["物流", "客服", "", "价格"]),
    ("'a b  c' | split", ["a", "b", "c"]),
    ("'' | split(',')", []),
    ("'2026-08-17T01:30:00Z' | date('%Y-%m-%d %H:%M')", "2026-08-17 09:30"),
    ("1786930200 | date('%H:%M', 'UTC')", "01:30"),
    ("1786930200000 | date('%m月%d日')", "08月17日"),
])
def test_a_helper_gives_the_value(expression: str, value: object) -> None:
    assert render("${{ " + expression + " }}", {"run": {"timezone": "Asia/Shanghai"}}) == value


@pytest.mark.parametrize(("expression", "said"), [
    ("'x' | regex_search('(')", "invalid regular expression '('"),
    ("'{' | from_json", "not JSON"),
    ("('[' * 500 ~ ']' * 500) | from_json", "nests more than 100 levels deep"),
    ("'x' | split('')", "split needs a separator that is not empty"),
    ("'昨天' | date", "'昨天' is not a time"),
    ("'now' | date('%Y', 'Mars/Base')", "unknown timezone 'Mars/Base'"),
])
def test_a_helper_given_bad_input_says_what_is_wrong(expression: str, said: str) -> None:
    with pytest.raises(TemplateError, match="cannot evaluate") as caught:
        render("${{ " + expression + " }}", {})
    assert said in str(caught.value)


def test_a_backtracking_pattern_ends_at_the_render_time_limit() -> None:
    started = time.monotonic()
    with pytest.raises(TemplateError, match="a regular expression took too long"):
        render("${{ ('a' * 60 ~ 'b') | regex_search('(a|aa)+$') }}", {}, seconds=1.0)
    assert time.monotonic() - started < 60  # bounded (the limit is 1 s; generous for a loaded machine)


def test_the_date_helper_uses_the_project_timezone(project_dir: Path) -> None:
    toml = project_dir / "playbook.toml"
    toml.write_text('timezone = "America/New_York"\n' + toml.read_text(encoding="utf-8"), encoding="utf-8")
    path = write_playbook(project_dir, """
name: when
steps:
  - {id: at, template: "${{ '2026-08-17T12:00:00Z' | date('%H:%M') }} ${{ run.timezone }}"}
outputs: {at: "${{ steps.at.output }}"}
""")
    outcome = run_playbook(path)
    assert outcome.status == "done", outcome.error
    assert outcome.outputs == {"at": "08:00 America/New_York"}
