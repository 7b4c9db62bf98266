"""When the model's concurrency limit is below what a map step asks for, the console says so once, when the
step starts (and the events keep it), instead of silently running fewer requests at a time."""

from __future__ import annotations

import json
from pathlib import Path

from runner.testing import FakeLLMServer
from tests.conftest import cli, write_playbook

WIDE = """
name: wide
steps:
  - id: notes
    map: "${{ range(12) | list }}"
    as: n
    concurrency: 16
    llm: {prompt: "第 ${{ n }} 条"}
outputs: {count: "${{ steps.notes.items | length }}"}
"""


def test_a_capped_step_says_so_once(project_dir: Path, server: FakeLLMServer) -> None:
    (project_dir / "playbook.toml").write_text(server.toml(concurrency=2), encoding="utf-8")
    path = write_playbook(project_dir, WIDE)
    done = cli("run", str(path), "--run-id", "wide", cwd=project_dir)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stdout.splitlines() if "并发上限" in line]
    assert len(said) == 1 and "模型 default 的并发上限是 2" in said[0] and "本步要求 16" in said[0]
    events = (project_dir / ".playbook" / "runs" / "wide" / "events.jsonl").read_text(encoding="utf-8")
    assert sum("并发上限" in json.loads(line).get("notice", "") for line in events.splitlines()) == 1

    (project_dir / "playbook.toml").write_text(server.toml(concurrency=16), encoding="utf-8")
    uncapped = cli("run", str(path), "--run-id", "wide2", cwd=project_dir)
    assert uncapped.returncode == 0 and "并发上限" not in uncapped.stdout
