"""Reads are confined like writes: project, playbook and run folders, `file` inputs and `[paths] read`; never
/proc, /sys, /dev, and never through a symlink that leads outside."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import cli, write_playbook

READ = """
name: reader
inputs: {target: {type: string}}
steps:
  - {id: read, tool: TOOL, with: {path: "${{ inputs.target }}"}}
outputs: {got: "${{ steps.read.output }}"}
"""


@pytest.mark.parametrize("tool", ["file.read", "sheet.read", "metrics.load"])
def test_system_files_and_escaping_symlinks_are_refused(project_dir: Path, tool: str) -> None:
    path = write_playbook(project_dir, READ.replace("TOOL", tool))
    (project_dir / "innocent.csv").symlink_to("/etc/passwd")
    for target, expected in (("/proc/self/environ", "is a system path"), ("/etc/passwd", "outside the project"),
                             ("innocent.csv", "outside the project"), ("../../../../etc/hostname", "outside")):
        done = cli("run", str(path), "-i", f"target={target}", cwd=project_dir)
        assert done.returncode == 1, (target, done.stdout)
        assert expected in done.stderr, (target, done.stderr)
        assert "FAKE_LLM_API_KEY" not in done.stderr + done.stdout
    assert not any("root:" in p.read_text(errors="replace") for p in (project_dir / ".playbook").rglob("*")
                   if p.is_file() and p.suffix in (".json", ".jsonl", ".md"))


def test_file_inputs_and_paths_read_are_readable(project_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "brief.md").write_text("# 活动简介\n双十一", encoding="utf-8")
    given = write_playbook(project_dir, """
name: given
inputs: {brief: {type: file}}
steps:
  - {id: read, tool: file.read, with: {path: "${{ inputs.brief }}"}}
outputs: {text: "${{ steps.read.text }}"}
""", "given.yaml")
    assert cli("run", str(given), "-i", f"brief={elsewhere / 'brief.md'}", cwd=project_dir).returncode == 0
    named = write_playbook(project_dir, READ.replace("TOOL", "file.read"), "named.yaml")
    refused = cli("run", str(named), "-i", f"target={elsewhere / 'brief.md'}", cwd=project_dir)
    assert refused.returncode == 1 and "[paths] read" in refused.stderr
    with (project_dir / "playbook.toml").open("a", encoding="utf-8") as toml:
        toml.write(f'\n[paths]\nread = ["{elsewhere}"]\n')
    assert cli("run", str(named), "-i", f"target={elsewhere / 'brief.md'}", cwd=project_dir).returncode == 0
