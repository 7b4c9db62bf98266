"""Bad input files get a clear error naming the file and what to do — never `internal error: …`, and never a
run that spends tokens on nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.testing import FakeLLMServer
from tests.conftest import ROOT, cli

pytestmark = pytest.mark.usefixtures("english")  # these tests check what the messages say, in English

DIGEST = ROOT / "playbooks" / "feedback_digest.yaml"


def _run(project_dir: Path, comments: Path) -> tuple[int, str]:
    done = cli("run", str(DIGEST), "-i", f"comments={comments}", "-i", "review=false", cwd=project_dir)
    return done.returncode, done.stderr + done.stdout


def test_a_file_named_xlsx_that_is_not_a_workbook(project_dir: Path, server: FakeLLMServer) -> None:
    fake = project_dir / "评论.xlsx"
    fake.write_text("编号,评论\n1,好\n", encoding="utf-8")  # a csv renamed to .xlsx
    code, text = _run(project_dir, fake)
    assert code == 2 and "internal error" not in text  # refused before a run exists: nothing to resume
    assert "'评论.xlsx' is not a readable xlsx workbook" in text.replace(str(project_dir) + "/", "") or \
        "is not a readable xlsx workbook" in text
    assert "save it again as .xlsx" in text and not server.requests


def test_a_one_megabyte_cell_is_read(project_dir: Path, server: FakeLLMServer) -> None:
    big = project_dir / "long.csv"
    big.write_text("id,text\n1," + "很长的评论" * 210_000 + "\n2,第二条\n", encoding="utf-8")
    code, text = _run(project_dir, big)
    assert "field larger than field limit" not in text and "internal error" not in text
    assert code == 0, text


def test_an_empty_file_stops_before_any_model_call(project_dir: Path, server: FakeLLMServer) -> None:
    for content in (b"", b"id,text\n"):
        empty = project_dir / "empty.csv"
        empty.write_bytes(content)
        code, text = _run(project_dir, empty)
        assert code == 2 and "has no rows" in text and "input 'comments'" in text, text
        assert "playbook resume" not in text
    assert not server.requests


def test_a_broken_jsonl_line_is_named(project_dir: Path, server: FakeLLMServer) -> None:
    lines = project_dir / "c.jsonl"
    lines.write_text(json.dumps({"id": 1, "text": "好"}, ensure_ascii=False) + "\n{broken\n", encoding="utf-8")
    code, text = _run(project_dir, lines)
    # the whole of a small file is looked at before the run: refused before it starts, naming the input
    assert code == 2 and "input 'comments'" in text and "line 2: not JSON" in text and not server.requests
