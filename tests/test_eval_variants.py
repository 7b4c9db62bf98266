"""Prompt variants in a suite: every case runs once per variant of a step (the rest as written), the reports put
them side by side, a recording replays per variant, and a variant that breaks the playbook is a suite error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import cli

pytestmark = pytest.mark.usefixtures("english")

PLAYBOOK = """\
name: slogan
inputs: {product: {type: string}}
steps:
  - id: write
    llm: {prompt: "为${{ inputs.product }}写一句口号", temperature: 0.7}
outputs: {slogan: "${{ steps.write.output }}"}
"""
REPLIES = {"rules": [{"match": "一句短口号", "reply": "记一笔，省一笔"},
                     {"match": "写一句口号", "reply": "轻记账，让每一分钱都有去处"}]}
SUITE = {
    "playbook": "../slogan.yaml", "fake_llm": {"script": "replies.yaml"},
    "variants": {"write": [{"name": "as_written"},
                           {"name": "short", "prompt": "为${{ inputs.product }}写一句短口号，不超过八个字",
                            "temperature": 0.2}]},
    "cases": [{"id": "app", "inputs": {"product": "轻记 App"},
               "assert": [{"name": "short enough", "that": "outputs.slogan", "length": {"max": 8}}]}],
}


def _suite(tmp_path: Path, suite: dict[str, object]) -> Path:
    (tmp_path / "slogan.yaml").write_text(PLAYBOOK, encoding="utf-8")
    evals = tmp_path / "evals"
    evals.mkdir()
    (evals / "replies.yaml").write_text(yaml.safe_dump(REPLIES, allow_unicode=True), encoding="utf-8")
    (evals / "slogan.yaml").write_text(yaml.safe_dump(suite, allow_unicode=True), encoding="utf-8")
    return evals / "slogan.yaml"


def test_each_variant_runs_every_case_and_is_reported_side_by_side(tmp_path: Path) -> None:
    suite = _suite(tmp_path, SUITE)
    recorded = cli("eval", str(suite), "--record", "--report", "out", cwd=tmp_path)
    assert recorded.returncode == 1, recorded.stdout + recorded.stderr  # the long slogan fails `short enough`
    report = json.loads((tmp_path / "out" / "slogan.json").read_text(encoding="utf-8"))
    assert {c["id"]: c["passed"] for c in report["cases"]} == {"app@write=as_written": False,
                                                                "app@write=short": True}
    assert [(v["variant"], v["passed"], v["cases"]) for v in report["variants"]] == [
        ("write=as_written", 0, 1), ("write=short", 1, 1)]
    markdown = (tmp_path / "out" / "slogan.md").read_text(encoding="utf-8")
    assert "## Variants side by side" in markdown and "| write=short | 1/1 |" in markdown
    assert "Variants side by side" in recorded.stdout
    replayed = cli("eval", str(suite), "--replay", "--report", "again", cwd=tmp_path)  # no server: the cassette
    again = json.loads((tmp_path / "again" / "slogan.json").read_text(encoding="utf-8"))
    assert replayed.returncode == 1 and [c["passed"] for c in again["cases"]] == [False, True]
    only = cli("eval", str(suite), "--replay", "--case", "app@write=short", "--report", "one", cwd=tmp_path)
    assert only.returncode == 0, only.stdout + only.stderr


@pytest.mark.parametrize(("variants", "said"), [
    ({"writ": [{"name": "x"}]}, "'writ' is not an llm step of slogan (llm steps: write)"),
    ({"write": [{"name": "x", "prompt": "${{ inputs.nope }}"}]}, "variant 'x' of step 'write' does not validate"),
    ({"write": [{"name": "x"}, {"name": "x"}]}, "variant 'x' is named twice"),
    ({"write": [{"name": "x", "temperature": 5}]}, "temperature is from 0 to 2, not 5"),
])
def test_a_wrong_variant_is_a_suite_error(tmp_path: Path, variants: dict[str, object], said: str) -> None:
    suite = _suite(tmp_path, {**SUITE, "variants": variants})
    done = cli("eval", str(suite), "--replay", cwd=tmp_path)
    assert done.returncode == 2 and said in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
