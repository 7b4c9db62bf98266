"""A way a route may go that, by its default `needs` (the step before it), also follows another of the route's
ways runs after that one too: validate warns, at the step, and says which `needs` to write for either meaning.
The advice is checked by running it."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_playbook, write_playbook

from runner.dsl.validate import load_and_validate

SWITCH = """
name: branches
steps:
  - {id: pick, switch: {cases: [{if: "${{ true }}", goto: big}], default: small}}
  - {id: big, template: 大}
  - {id: small%s, template: 小}
outputs: {small: "${{ steps.small.output }}"}
"""

ERROR_BRANCH = """
name: guarded
steps:
  - {id: fetch, template: 好, on_error: {goto: fix}}
  - {id: use, template: "用 ${{ steps.fetch.output }}"}
  - {id: fix%s, template: 修}
outputs: {fixed: "${{ steps.fix.output }}"}
"""


@pytest.mark.parametrize(("text", "step", "router", "before", "line"), [
    (SWITCH, "small", "pick", "big", 6), (ERROR_BRANCH, "fix", "fetch", "use", 6)])
def test_a_way_that_follows_another_way_by_default_is_warned_at_its_line(
        tmp_path: Path, english: None, text: str, step: str, router: str, before: str, line: int) -> None:
    playbook = load_and_validate(write_playbook(tmp_path, text % ""))
    [warning] = [w for w in playbook.warnings if "may go" in w.message]
    assert (warning.line, warning.col) == (line, 10)
    assert f"step '{step}' is a way '{router}' may go" in warning.message
    assert f"`needs: [{router}]`" in warning.message and f"`needs: [{before}]`" in warning.message


@pytest.mark.parametrize("needs", ["pick", "big"])
def test_explicit_needs_say_what_is_meant_and_silence_it(tmp_path: Path, needs: str) -> None:
    playbook = load_and_validate(write_playbook(tmp_path, SWITCH % f", needs: [{needs}]"))
    assert playbook.warnings == []


def test_the_advice_holds_when_run(project_dir: Path) -> None:
    """As written, the branch not taken runs anyway; with `needs: [<router>]` it does not."""
    as_written = run_playbook(write_playbook(project_dir, SWITCH % ""))
    assert as_written.status == "done" and as_written.outputs["small"] == "小"
    exclusive = run_playbook(write_playbook(project_dir, SWITCH % ", needs: [pick]", "exclusive.yaml"))
    assert exclusive.status == "done" and exclusive.outputs["small"] is None
    handled = run_playbook(write_playbook(project_dir, ERROR_BRANCH % ", needs: [fetch]", "handled.yaml"))
    assert handled.status == "done" and handled.outputs["fixed"] is None  # no error: the branch does not run
