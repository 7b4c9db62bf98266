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


def test_builtin_tools_arrive_only_through_the_entry_point(project_dir: Path) -> None:
    """With the package metadata missing (a copy of the source tree, never installed), the registry does not
    fall back to importing `tools` by name: it says what is wrong and how to fix it, exit 2, no traceback."""
    import subprocess
    import sys

    text = "name: p\nsteps:\n  - {id: r, tool: file.write, with: {path: a.md, content: x}}\n"
    path = write_playbook(project_dir, text)
    child = ("import importlib.metadata as metadata\n"
             "metadata.entry_points = lambda **selection: []  # as on a machine where the package is not installed\n"
             "import sys\nsys.argv = ['playbook', 'validate', sys.argv[1]]\n"
             "from runner.cli import main\nmain()\n")
    done = subprocess.run([sys.executable, "-c", child, str(path)], capture_output=True, text=True, timeout=120,
                          cwd=project_dir)
    assert done.returncode == 2, done.stderr
    assert "the built-in tools are not registered: no 'builtin' entry point in the group 'playbook.tools'" \
        in done.stderr and "reinstall the project" in done.stderr
    assert "Traceback" not in done.stderr
