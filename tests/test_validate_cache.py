"""A process validates a playbook once per source (runner.dsl.validate.load_and_validate): a worker, the web
server and an eval suite meet the same one again and again. A hit must never hide a change: not of the playbook's
text, nor of a sub-playbook file it read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner.dsl.validate import load_and_validate
from runner.errors import PlaybookError

PARENT = "name: parent\nsteps:\n  - {id: child, playbook: child.yaml, with: {topic: 新品}}\n"
CHILD = "name: child\ninputs: {topic: {type: string}}\nsteps:\n  - {id: t, template: '${{ inputs.topic }}'}\n"


def test_the_same_source_is_validated_once(tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text(CHILD, encoding="utf-8")
    (tmp_path / "pb.yaml").write_text(PARENT, encoding="utf-8")
    first = load_and_validate(tmp_path / "pb.yaml")
    assert load_and_validate(tmp_path / "pb.yaml") is first
    assert load_and_validate(tmp_path / "pb.yaml", PARENT) is first  # a run's stored source: the same text
    changed = PARENT.replace("新品", "旧品")
    assert load_and_validate(tmp_path / "pb.yaml", changed) is not first


def test_a_changed_sub_playbook_is_read_again(tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text(CHILD, encoding="utf-8")
    (tmp_path / "pb.yaml").write_text(PARENT, encoding="utf-8")
    load_and_validate(tmp_path / "pb.yaml")
    # the child now needs an input the parent does not give: the parent no longer validates
    (tmp_path / "child.yaml").write_text(CHILD.replace("inputs: {topic: {type: string}}",
                                                       "inputs: {topic: {type: string}, audience: {type: string}}"),
                                         encoding="utf-8")
    stat = (tmp_path / "child.yaml").stat()
    os.utime(tmp_path / "child.yaml", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(PlaybookError, match="audience"):
        load_and_validate(tmp_path / "pb.yaml")
