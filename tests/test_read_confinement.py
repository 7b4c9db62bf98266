"""Reads are confined like writes: project, playbook and run folders, `file` inputs and `[paths] read`; never
/proc, /sys, /dev, and never through a symlink that leads outside."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import cli, write_playbook

pytestmark = pytest.mark.usefixtures("english")  # these tests check what the messages say, in English

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


def test_the_projects_bookkeeping_is_not_a_tools_to_read_or_write(project_dir: Path) -> None:
    """The key that signs card buttons, the store, saved logins and other runs' folders are refused to every tool
    — even with the whole project under `[paths] write` — while a run reads and writes its own folder."""
    state = project_dir / ".playbook"
    (state / "auth").mkdir(parents=True)
    (state / "card.key").write_text("secret-signing-key", encoding="utf-8")
    (state / "auth" / "weibo.json").write_text('{"cookies": []}', encoding="utf-8")
    (state / "runs" / "someone-elses" ).mkdir(parents=True)
    (state / "runs" / "someone-elses" / "report.md").write_text("# 别人的报告", encoding="utf-8")
    with (project_dir / "playbook.toml").open("a", encoding="utf-8") as toml:
        toml.write('\n[paths]\nwrite = ["."]\nread = ["."]\n')
    reader = write_playbook(project_dir, READ.replace("TOOL", "file.read"))
    for target in (".playbook/card.key", str(state / "card.key"), ".playbook/state.db", ".playbook/auth/weibo.json",
                   ".playbook/runs/someone-elses/report.md", ".playbook"):
        done = cli("run", str(reader), "-i", f"target={target}", cwd=project_dir)
        assert done.returncode != 0 and "bookkeeping" in done.stderr, (target, done.stdout, done.stderr)
        assert "secret-signing-key" not in done.stdout + done.stderr
    writer = write_playbook(project_dir, """
name: writer
inputs: {target: {type: string}}
steps:
  - {id: write, tool: file.write, with: {path: "${{ inputs.target }}", content: forged}}
""", "writer.yaml")
    done = cli("run", str(writer), "-i", f"target={state / 'card.key'}", cwd=project_dir)
    assert done.returncode != 0 and "bookkeeping" in done.stderr, done.stderr
    assert (state / "card.key").read_text(encoding="utf-8") == "secret-signing-key"
    own = write_playbook(project_dir, """
name: own
steps:
  - {id: write, tool: file.write, with: {path: note.md, content: 自己的}}
  - {id: read, tool: file.read, with: {path: "${{ steps.write.path }}"}}
outputs: {text: "${{ steps.read.text }}"}
""", "own.yaml")
    done = cli("run", str(own), cwd=project_dir)
    assert done.returncode == 0 and "自己的" in done.stdout, done.stderr
