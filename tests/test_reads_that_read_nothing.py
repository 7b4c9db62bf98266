"""Two reads validate refuses because the run would read nothing there: a step read by one that no path leads to
from it (it runs later, or beside it), and a read into the output of a step a `when:` may skip. Before, both
passed validate: the first skipped its step in silence, the second failed the run after its paid calls."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_playbook

from runner.dsl.validate import load_and_validate
from runner.errors import PlaybookError


def refused(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(PlaybookError) as caught:
        load_and_validate(write_playbook(tmp_path, text))
    return [str(d) for d in caught.value.diagnostics]


def test_a_when_that_reads_a_later_step_is_refused_at_its_line(tmp_path: Path, english: None) -> None:
    [problem] = refused(tmp_path, """name: early
steps:
  - {id: early, when: "${{ steps.late.output == 'x' }}", template: 早}
  - {id: late, template: 晚}
""")
    assert problem.startswith(str(tmp_path / "pb.yaml") + ":3:23:")
    assert "no step leads from 'late' to 'early'" in problem and "`needs: [late]`" in problem


def test_a_step_reading_one_beside_it_is_refused(tmp_path: Path, english: None) -> None:
    [problem] = refused(tmp_path, """name: beside
steps:
  - {id: a, template: 甲}
  - {id: b, needs: [], template: "${{ steps.a.output }}"}
""")
    assert "no step leads from 'a' to 'b'" in problem


def test_a_read_round_a_loop_or_after_the_step_passes(tmp_path: Path) -> None:
    load_and_validate(write_playbook(tmp_path, """name: loop
steps:
  - id: draft
    max_visits: 3
    template: "${{ steps.check.output if steps.check.status == 'done' else '初稿' }}"
  - {id: check, template: 改}
  - id: again
    switch: {cases: [{if: "${{ steps.draft.visits < 2 }}", goto: draft}], default: end}
"""))


def test_a_read_into_a_step_a_when_may_skip_is_refused_unless_guarded(tmp_path: Path, english: None) -> None:
    text = """name: maybe
inputs: {go: {type: boolean, default: false}}
steps:
  - {id: fetch, when: "${{ inputs.go }}", template: {title: 标题}}
  - {id: use, template: "%s"}
"""
    [problem] = refused(tmp_path, text % "${{ steps.fetch.output.title }}")
    assert "step 'fetch' is skipped when its `when:` is false" in problem
    load_and_validate(write_playbook(tmp_path, text % "${{ steps.fetch.output.title | default('无') }}", "ok.yaml"))


@pytest.mark.parametrize(("on_error", "read", "refuses"), [
    ("skip", "steps.fetch.output.title", True),
    ("skip", "steps.fetch.title", True),  # the output's field, lifted beside it
    ("{default: 无}", "steps.fetch.output.title", True),
    ("{default: {title: 无}}", "steps.fetch.output.title", False),
    ("skip", "steps.fetch.output.title | default('无')", False),
    ("skip", "steps.fetch.status", False),
])
def test_a_read_into_a_step_whose_on_error_leaves_no_such_field(tmp_path: Path, english: None, on_error: str,
                                                                read: str, refuses: bool) -> None:
    text = f"""name: tolerant
steps:
  - {{id: fetch, tool: web.fetch, with: {{url: "https://example.com/"}}, on_error: {on_error}}}
  - {{id: use, template: "${{{{ {read} }}}}"}}
"""
    if refuses:
        [problem] = refused(tmp_path, text)
        assert "when step 'fetch' fails its `on_error` gives it an output without that field" in problem
    else:
        load_and_validate(write_playbook(tmp_path, text))


@pytest.mark.parametrize(("read", "refuses"), [
    ("steps.each.output.n", True),  # a field of the list itself: nothing there
    ("steps.each.output[0].n", False),
    ("steps.each.output | map(attribute='n') | list", False),
    ("steps.each.items", False),
    ("steps.each.output | length", False),
])
def test_a_field_read_off_a_maps_list_output(tmp_path: Path, english: None, read: str, refuses: bool) -> None:
    text = f"""name: mapped
steps:
  - {{id: each, map: [1, 2, 3], template: {{n: "${{{{ item }}}}"}}}}
  - {{id: use, template: "${{{{ {read} }}}}"}}
"""
    if refuses:
        [problem] = refused(tmp_path, text)
        assert "`steps.each.output` is a list, one entry per item of its `map:`, with no field 'n'" in problem
    else:
        load_and_validate(write_playbook(tmp_path, text))


def test_a_reader_under_the_same_when_may_read_into_the_output(tmp_path: Path) -> None:
    load_and_validate(write_playbook(tmp_path, """name: same
inputs: {go: {type: boolean, default: false}}
steps:
  - {id: fetch, when: "${{ inputs.go }}", template: {title: 标题}}
  - {id: use, when: "${{ inputs.go }}", template: "${{ steps.fetch.output.title }}"}
"""))
