"""Third-party tools arrive through the `playbook.tools` entry point (tests/plugin_example, installed by
the setup command) and behave like built-ins: listed, validated, run."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from runner.cli import app
from runner.registry import all_tools
from tests.conftest import run_playbook, write_playbook


def test_plugin_tool_is_registered_listed_validated_and_run(project_dir: Path) -> None:
    assert "example.reverse" in all_tools()
    assert "example.reverse" in CliRunner().invoke(app, ["tools"]).stdout
    text = "name: p\nsteps:\n  - {id: r, tool: example.reverse, with: {txt: a}}\n"
    bad = write_playbook(project_dir, text, "bad.yaml")
    result = CliRunner().invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2 and "has no argument 'txt' (did you mean 'text'?)" in result.output
    path = write_playbook(project_dir, """
name: plugin_user
steps:
  - {id: r, tool: example.reverse, with: {text: 运营周报}}
outputs: {text: "${{ steps.r.text }}"}
""")
    assert run_playbook(path).outputs == {"text": "报周营运"}
