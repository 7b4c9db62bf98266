"""Third-party tools arrive through the `playbook.tools` entry point (tests/plugin_example) and behave like
built-ins: listed, validated, run. The example is not installed into the project's environment (a newcomer's
`playbook tools` does not list it): a test puts it on the path of the commands it runs, with the package
metadata an install would write."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli, write_playbook

pytestmark = pytest.mark.usefixtures("english")  # these tests check what the messages say, in English


def _with_plugin(folder: Path) -> dict[str, str]:
    """The environment of a process that has the example plugin installed: its code and its dist-info (name,
    version, the `playbook.tools` entry point) on PYTHONPATH, as pip would leave them in site-packages."""
    site = folder / "site"
    info = site / "playbook_plugin_example-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: playbook-plugin-example\nVersion: 0.1.0\n",
                                   encoding="utf-8")
    (info / "entry_points.txt").write_text("[playbook.tools]\nexample = playbook_plugin_example\n",
                                           encoding="utf-8")
    paths = [str(site), str(ROOT / "tests" / "plugin_example"), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def test_plugin_tool_is_registered_listed_validated_and_run(project_dir: Path, tmp_path: Path) -> None:
    env = _with_plugin(tmp_path)
    assert "example.reverse" in cli("tools", cwd=project_dir, env=env).stdout
    assert "example.reverse" not in cli("tools", cwd=project_dir).stdout  # not in the project's own environment
    text = "name: p\nsteps:\n  - {id: r, tool: example.reverse, with: {txt: a}}\n"
    bad = write_playbook(project_dir, text, "bad.yaml")
    result = cli("validate", str(bad), cwd=project_dir, env=env)
    assert result.returncode == 2 and "has no argument 'txt' (did you mean 'text'?)" in result.stderr + result.stdout
    path = write_playbook(project_dir, """
name: plugin_user
steps:
  - {id: r, tool: example.reverse, with: {text: 运营周报}}
outputs: {text: "${{ steps.r.text }}"}
""")
    done = cli("run", str(path), cwd=project_dir, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    (record,) = (project_dir / ".playbook" / "runs").glob("*/run.json")
    assert json.loads(record.read_text(encoding="utf-8"))["outputs"] == {"text": "报周营运"}


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
