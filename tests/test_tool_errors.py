"""Bad tool input fails the run with the step and the argument named; finished steps are kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.testing import FakeLLMServer
from tests.conftest import resume, run_playbook, write_playbook

pytestmark = pytest.mark.usefixtures("english")  # these tests check what the messages say, in English


@pytest.mark.parametrize(("step", "expected"), [
    ("{id: bad, tool: sheet.read, with: {path: garbage.csv, encoding: utf-8}}",
     "step 'bad': sheet.read: argument 'encoding': 'garbage.csv' is neither UTF-8 nor GBK"),
    ("{id: bad, tool: sheet.write, with: {path: ../../escape.xlsx, rows: [{a: 1}]}}",
     "step 'bad': sheet.write: argument 'path': '../../escape.xlsx' is outside the run folder"),
    ("{id: bad, tool: file.write, with: {path: /tmp/escape.md, content: x}}",
     "step 'bad': file.write: argument 'path': '/tmp/escape.md' is outside the run folder"),
    ("{id: bad, tool: web.fetch, with: {url: 'http://example.org/'}}",
     "step 'bad': web.fetch: argument 'url': host 'example.org' is not allowed"),
    ("{id: bad, tool: sheet.read, with: {path: garbage.csv, columns: [id, txt]}}",
     "step 'bad': sheet.read: argument 'columns'"),
])
def test_bad_tool_input(project_dir: Path, server: FakeLLMServer, step: str, expected: str) -> None:
    with (project_dir / "playbook.toml").open("a", encoding="utf-8") as fh:
        fh.write('\n[web]\nallow_hosts = ["127.0.0.1"]\nallow_private = ["127.0.0.1"]\n')
    garbage = bytes(range(128, 256)) * 4
    (project_dir / "garbage.csv").write_bytes(b"id,text\n1," + (garbage if "encoding" in step else b"ok") + b"\n")
    path = write_playbook(project_dir, f"name: t\nsteps:\n  - {{id: first, llm: {{prompt: 先做的事}}}}\n  - {step}\n")
    outcome = run_playbook(path)
    assert outcome.status == "failed"
    assert outcome.error.startswith(expected), outcome.error
    assert not (project_dir.parent / "escape.xlsx").exists() and not Path("/tmp/escape.md").exists()
    again = resume(outcome.run_id)
    assert again.status == "failed" and len(server.prompts("先做的事")) == 1  # the finished step was kept
