"""Third-party tools arrive through the `playbook.tools` entry point (tests/plugin_example, installed by
the setup command) and behave like built-ins: listed, validated, run."""

from __future__ import annotations

import json
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


def test_the_builtin_catalog_names_exactly_what_each_module_registers() -> None:
    """`tools.TOOL_MODULES` lets validate import only the families a playbook uses; it cannot drift from
    the `@tool` registrations (every module imported by a fresh interpreter, each tool traced to its module)."""
    import subprocess
    import sys

    code = ("import importlib, json, pkgutil, tools, runner.registry as r\n"
            "for m in pkgutil.iter_modules(tools.__path__): importlib.import_module('tools.' + m.name)\n"
            "print(json.dumps({n: i.function.__module__ for n, i in r._TOOLS.items() "
            "if i.function.__module__.startswith('tools.')}))")
    registered = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                           check=True).stdout)
    from tools import TOOL_MODULES

    assert registered == TOOL_MODULES
    assert len(TOOL_MODULES) >= 20


def test_validate_imports_only_the_tool_families_the_playbook_uses() -> None:
    import subprocess
    import sys

    root = Path(__file__).parents[1]
    code = ("import sys\nfrom runner.dsl.validate import load_and_validate\n"
            "load_and_validate('playbooks/kpi_report.yaml')\n"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('tools.'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=root).stdout.split()
    used = {"tools.metrics", "tools.metrics_compare", "tools.checks", "tools.file", "tools.notify"}
    assert used <= set(loaded), loaded
    unused = {"tools.scrape", "tools.web", "tools.sheet", "tools.text", "tools.trend", "tools.feed",
              "tools.http_request", "tools.scorecard"}
    assert not unused & set(loaded), loaded
