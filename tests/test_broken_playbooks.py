"""Every broken playbook in tests/broken gives its expected `file:line:col: message`, exit 2, no traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runner.cli import app
from tests.conftest import cli

BROKEN = sorted((Path(__file__).parent / "broken").glob("*.yaml"))


def expectation(path: Path) -> str:
    match = re.search(r"^# expect: (.+)$", path.read_text(encoding="utf-8"), re.MULTILINE)
    assert match, f"{path.name} has no '# expect:' line"
    return match.group(1).strip()


def test_there_are_at_least_40_cases() -> None:
    assert len(BROKEN) >= 40


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_playbook_is_reported_at_its_source(path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", str(path)])
    expected = f"{path}:{expectation(path)}"
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line.removeprefix("error ") for line in result.output.splitlines()]
    assert any(line.startswith(expected) for line in lines), f"wanted {expected!r} in:\n{result.output}"


def test_real_cli_prints_no_traceback_and_exits_2(tmp_path: Path) -> None:
    for name in ("sandbox_mro.yaml", "yaml_tab_indent.yaml", "unknown_tool.yaml"):
        path = Path(__file__).parent / "broken" / name
        done = cli("run", str(path), cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr + done.stdout
        assert f"{path}:{expectation(path)}" in done.stderr
