"""A run never ends "done" over an output it could not evaluate; steps off the path read as skipped."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import cli, run_playbook, write_playbook

BRANCHES = """
name: branches
inputs: {mode: {type: string, default: short}}
steps:
  - id: route
    switch:
      cases: [{if: "${{ inputs.mode == 'long' }}", goto: long}]
      default: short
  - id: long
    tool: file.write
    with: {path: long.md, content: 长文}
    goto: end
  - id: short
    tool: file.write
    with: {path: short.md, content: 短文}
outputs:
  written: "${{ steps.long.output.path if steps.long.output else steps.short.output.path }}"
  long_status: "${{ steps.long.status }}"
  long_output: "${{ steps.long.output }}"
"""


def test_a_step_on_a_branch_not_taken_reads_as_skipped_with_a_null_output(project_dir: Path) -> None:
    path = write_playbook(project_dir, BRANCHES)
    outcome = run_playbook(path)
    assert outcome.status == "done", outcome.error
    outputs = outcome.outputs
    assert outputs["written"].endswith("short.md")
    assert outputs["long_status"] == "skipped" and outputs["long_output"] is None


def test_an_output_that_cannot_be_evaluated_fails_the_run(project_dir: Path) -> None:
    # a fault only the run can find (validate refuses a read into a step that may be skipped, like `.path.nope`)
    broken = BRANCHES.replace("long_output: \"${{ steps.long.output }}\"",
                              "size: \"${{ (steps.long.output or {}).get('path', '') | length / 0 }}\"")
    path = write_playbook(project_dir, broken)
    done = cli("run", str(path), cwd=project_dir)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "✓ 已完成" not in done.stdout + done.stderr and "× 失败" in done.stderr
    assert "outputs.size：无法计算" in done.stderr and "division by zero" in done.stderr
    listing = cli("runs", "list", cwd=project_dir)
    assert "失败" in listing.stdout and "已完成" not in listing.stdout.split("\n", 2)[-1]


def test_a_playbook_without_model_steps_prints_no_model_note(tmp_path: Path) -> None:
    path = write_playbook(tmp_path, BRANCHES)
    done = cli("run", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "embedded" not in done.stderr and "note" not in done.stderr
