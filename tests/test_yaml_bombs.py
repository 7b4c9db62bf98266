"""YAML anchors that expand past a bound are refused at once, wherever the YAML comes from."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from starlette.testclient import TestClient

from runner.config import load_project
from runner.server import create_app
from tests.conftest import ROOT, cli

BOMB = ROOT / "tests" / "broken" / "yaml_bomb.yaml"
LAUGHS = "\n".join(line for line in BOMB.read_text(encoding="utf-8").splitlines()[1:10])


def test_a_bomb_in_an_inputs_file_is_refused(project_dir: Path) -> None:
    inputs = project_dir / "inputs.yaml"
    inputs.write_text(LAUGHS + "\nkeywords: *i\n", encoding="utf-8")
    done = cli("run", str(ROOT / "playbooks" / "trend_scan.yaml"), "--inputs", str(inputs), cwd=project_dir,
               timeout=60)
    assert done.returncode == 2 and "展开后超过 200,000 个值" in done.stderr


def test_a_bomb_dropped_in_playbooks_does_not_stall_the_server(project_dir: Path) -> None:
    (project_dir / "playbooks").mkdir()
    shutil.copy(BOMB, project_dir / "playbooks" / "bomb.yaml")
    shutil.copy(ROOT / "playbooks" / "kpi_report.yaml", project_dir / "playbooks")
    with TestClient(create_app(load_project()), client=("127.0.0.1", 50000), base_url="http://127.0.0.1:8600") as http:
        started = time.monotonic()
        page = http.get("/playbooks")
        seconds = time.monotonic() - started
    assert page.status_code == 200 and "kpi_report" in page.text
    print(f"playbooks page with a bomb beside: {seconds:.2f}s")


def test_an_oversized_playbook_or_inputs_file_is_refused_before_it_is_parsed(project_dir: Path) -> None:
    """A 50 MB playbook took 202 s to validate: a playbook is at most 1 MB, an --inputs file 5 MB, each refused
    by its size with what to do instead."""
    big = project_dir / "big.yaml"
    big.write_text("name: big\nsteps:\n  - {id: a, tool: file.write, with: {path: a.md, content: '"
                   + "数据" * 400_000 + "'}}\n", encoding="utf-8")
    done = cli("validate", str(big), cwd=project_dir, timeout=60)
    assert done.returncode == 2 and "playbook 最大 1 MB" in done.stderr and "type: file" in done.stderr
    inputs = project_dir / "inputs.yaml"
    inputs.write_text("keywords: [" + ", ".join(["手机"] * 1_200_000) + "]\n", encoding="utf-8")
    done = cli("run", str(ROOT / "playbooks" / "trend_scan.yaml"), "--inputs", str(inputs), cwd=project_dir,
               timeout=60)
    assert done.returncode == 2 and "输入文件最大 5 MB" in done.stderr, done.stderr
