"""A big step output (a table of tens of thousands of rows) is kept once, in a file beside the run — not in every
checkpoint — and a later process (an approval, a resume) reads it back; a csv is read as it is decoded, so an
encoding that fails deep in the file is noticed there and the file read again in the next."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.config import load_project
from runner.engine.spill import FOLDER
from runner.server.service import Service
from tests.conftest import cli, write_playbook

pytestmark = pytest.mark.usefixtures("english")  # these tests check what the messages say, in English

ROWS = 30_000  # about 2 MB of JSON: over the 1,000,000 characters an output may take in the state

PAUSED = """
name: big
inputs: {comments: {type: file}}
steps:
  - {id: load, tool: sheet.read, with: {path: "${{ inputs.comments }}"}}
  - id: review
    approval: {title: 看一眼行数, show: {count: "${{ steps.load.count }}"}}
  - id: after
    tool: file.write
    with: {path: after.txt, content: "${{ steps.load.count }} ${{ steps.load.rows[-1]['评论'] }}"}
outputs: {count: "${{ steps.load.output.count }}"}
"""


def _comments(folder: Path) -> Path:
    path = folder / "comments.csv"
    lines = [f"{i},物流很快，第{i}次购买" for i in range(ROWS)]
    path.write_text("编号,评论\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def _waiting_run(project_dir: Path) -> tuple[str, Path]:
    write_playbook(project_dir, PAUSED, "big.yaml")
    comments = _comments(project_dir)
    waiting = cli("run", "big.yaml", "-i", f"comments={comments}", cwd=project_dir)
    assert waiting.returncode == 3, waiting.stdout + waiting.stderr
    run_id = waiting.stdout.split("playbook approve ")[1].split()[0]
    return run_id, project_dir / ".playbook" / "runs" / run_id


def test_a_big_output_is_kept_beside_the_run_and_read_back_by_the_next_process(project_dir: Path) -> None:
    run_id, run_dir = _waiting_run(project_dir)
    last = f"第{ROWS - 1}次购买".encode()
    (kept,) = (run_dir / FOLDER).iterdir()
    assert last in kept.read_bytes()
    checkpoints = (project_dir / ".playbook" / "checkpoints.db").read_bytes()
    assert last not in checkpoints and len(checkpoints) < 1_000_000  # the state holds a marker, not the rows
    service = Service(load_project())
    try:  # the run page lists what the run made, not where its state keeps outputs
        assert not any(run_id in p.name for p in service.artifacts(run_id, logs=True))
    finally:
        service.close()
    approved = cli("approve", run_id, cwd=project_dir)  # another process: the rows come back from the file
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert (run_dir / "after.txt").read_text(encoding="utf-8") == f"{ROWS} 物流很快，第{ROWS - 1}次购买"
    assert f"{ROWS:,}" in approved.stdout


def test_a_kept_output_that_is_gone_is_a_clear_error_not_a_traceback(project_dir: Path) -> None:
    run_id, run_dir = _waiting_run(project_dir)
    for kept in (run_dir / FOLDER).iterdir():
        kept.unlink()
    approved = cli("approve", run_id, cwd=project_dir)
    assert approved.returncode == 1
    said = approved.stdout + approved.stderr
    assert "step 'load'" in said and "cannot be read" in said and "Traceback" not in said


def test_an_encoding_that_fails_deep_in_the_file_is_given_up_from_the_start(project_dir: Path) -> None:
    """A GBK export whose first 40,000 lines are plain ASCII (past what the check before a run looks at): UTF-8
    decodes them, fails at the first Chinese character, and the whole file is read again as GBK — no row from
    the failed attempt is kept."""
    lines = [f"{i},ok" for i in range(40_000)] + [f"{i},物流很快" for i in range(40_000, 40_010)]
    path = project_dir / "gbk.csv"
    path.write_bytes(("id,text\n" + "\n".join(lines) + "\n").encode("gbk"))
    assert path.stat().st_size > 300_000
    write_playbook(project_dir, """
name: gbk
inputs: {f: {type: file}}
steps:
  - {id: load, tool: sheet.read, with: {path: "${{ inputs.f }}"}}
outputs: {count: "${{ steps.load.count }}", last: "${{ steps.load.rows[-1].text }}"}
""", "gbk.yaml")
    done = cli("run", "gbk.yaml", "-i", f"f={path}", cwd=project_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "40,010" in done.stdout and "物流很快" in done.stdout


def test_steps_named_like_the_views_own_fields_and_steps_as_json(project_dir: Path) -> None:
    """`steps` is read lazily (each output's fields lifted as it is read), yet a step named `results` or `spill`
    is that step, and `steps | tojson` is every step's view."""
    write_playbook(project_dir, """
name: names
steps:
  - {id: results, tool: file.write, with: {path: a.txt, content: "x"}}
  - {id: spill, tool: file.write, with: {path: b.txt, content: "${{ steps.results.bytes }}"}}
outputs:
  first: "${{ steps.results.output.path }}"
  second: "${{ steps.spill.bytes }}"
  everything: "${{ steps | tojson }}"
""", "names.yaml")
    done = cli("run", "names.yaml", cwd=project_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    (record,) = (project_dir / ".playbook" / "runs").glob("*/run.json")
    outputs = json.loads(record.read_text(encoding="utf-8"))["outputs"]
    everything = json.loads(outputs["everything"])
    assert set(everything) == {"results", "spill"}
    assert everything["results"]["output"]["path"] == outputs["first"] and outputs["first"].endswith("a.txt")
    assert outputs["second"] == everything["spill"]["bytes"] == everything["spill"]["output"]["bytes"]
    written = (record.parent / "b.txt").read_text(encoding="utf-8").strip()
    assert written == str(everything["results"]["bytes"])  # `steps.results.bytes` was the step's, lifted
