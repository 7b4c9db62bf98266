"""Runs belong to a project folder: from elsewhere a command says where it looked and how to name the project
(`--project DIR` or PLAYBOOK_PROJECT), and with the project named, `playbooks/…` paths resolve from it."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import cli, write_playbook

WAITS = """
name: waits
steps:
  - id: draft
    tool: file.write
    with: {path: d.md, content: 草稿}
  - id: ok
    approval: {title: 看一下, show: "${{ steps.draft }}"}
outputs: {path: "${{ steps.draft.path }}"}
"""


def test_a_run_id_from_another_folder_names_where_it_looked_and_how_to_point_at_the_project(
        project_dir: Path, tmp_path_factory: object) -> None:
    (project_dir / "playbooks").mkdir()
    write_playbook(project_dir / "playbooks", WAITS, "waits.yaml")
    started = cli("run", "playbooks/waits.yaml", "--run-id", "far-away", cwd=project_dir)
    assert started.returncode == 3, started.stderr
    elsewhere = project_dir.parent / f"{project_dir.name}-elsewhere"
    elsewhere.mkdir()

    lost = cli("approve", "far-away", cwd=elsewhere)
    assert lost.returncode == 1
    assert f"{elsewhere.resolve() / '.playbook' / 'state.db'} 里没有运行 'far-away'" in lost.stderr
    assert "--project DIR 或 PLAYBOOK_PROJECT=DIR" in lost.stderr and "Traceback" not in lost.stderr

    shown = cli("--project", str(project_dir), "runs", "show", "far-away", cwd=elsewhere)
    assert shown.returncode == 0 and "待审核" in shown.stdout
    approved = cli("approve", "far-away", cwd=elsewhere, env={"PLAYBOOK_PROJECT": str(project_dir)})
    assert approved.returncode == 0, approved.stderr
    assert (project_dir / ".playbook" / "runs" / "far-away" / "d.md").read_text(encoding="utf-8") == "草稿"

    again = cli("--project", str(project_dir), "run", "playbooks/waits.yaml", "--run-id", "from-elsewhere",
                cwd=elsewhere)  # the playbook path resolves from the project, not from this folder
    assert again.returncode == 3, again.stderr
    assert not (elsewhere / ".playbook").exists()

    missing = cli("--project", str(elsewhere / "nope"), "runs", "list", cwd=elsewhere)
    assert missing.returncode == 2 and "不是文件夹" in missing.stderr


def test_help_shows_brackets_as_written(project_dir: Path) -> None:
    shown = cli("--help", cwd=project_dir)
    assert "[[schedules]]" in shown.stdout and "130 已中断" in shown.stdout and "--project" in shown.stdout
