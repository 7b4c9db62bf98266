"""`playbook eval` with several suites: each in a process of its own (`--jobs`), the tables in the order the suites
were named, a broken suite said as a suite error while the others still run — the same results as one at a time."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import cli
from tests.test_evals import REPLIES, make_project

pytestmark = pytest.mark.usefixtures("english")


def _suites(tmp_path: Path) -> list[str]:
    first = make_project(tmp_path)
    shutil.copy(first, first.with_name("second.yaml"))
    first.with_name("broken.yaml").write_text("playbook: ../push_copy.yaml\ncases: [{id: x, inputs: 3}]\n",
                                              encoding="utf-8")
    return ["evals/push.yaml", "evals/broken.yaml", "evals/second.yaml"]


def _passed(tmp_path: Path, report: str, name: str) -> list[tuple[str, bool]]:
    data = json.loads((tmp_path / report / f"{name}.json").read_text(encoding="utf-8"))
    return [(case["id"], case["passed"]) for case in data["cases"]]


def test_suites_in_processes_of_their_own_report_as_one_at_a_time(tmp_path: Path) -> None:
    suites = _suites(tmp_path)
    side_by_side = cli("eval", *suites, "--jobs", "3", "--report", "parallel", cwd=tmp_path)
    one_by_one = cli("eval", *suites, "--jobs", "1", "--report", "serial", cwd=tmp_path)

    for result in (side_by_side, one_by_one):
        assert result.returncode == 2, result.stderr  # the broken suite; the other two passed
        assert "broken.yaml" in result.stderr and "Traceback" not in result.stderr, result.stderr
        tables = re.findall(r"^\s*(push|second) \(", result.stdout, flags=re.MULTILINE)
        assert tables == ["push", "second"], result.stdout  # in the order named, whichever finished first
        assert result.stdout.count("1/1 cases passed") == 2, result.stdout
    # a suite in a process of its own says its name on each progress line
    assert re.search(r"^  second: reject_then_approve #1: pass", side_by_side.stderr, flags=re.MULTILINE), \
        side_by_side.stderr
    assert not re.search(r"^  second: ", one_by_one.stderr, flags=re.MULTILINE), one_by_one.stderr
    for name in ("push", "second"):
        assert _passed(tmp_path, "parallel", name) == _passed(tmp_path, "serial", name) == \
            [("reject_then_approve", True)]


def test_ctrl_c_ends_every_suite_process_quietly(tmp_path: Path) -> None:
    suite = make_project(tmp_path)
    hanging = {**REPLIES, "latency": 3600}  # the second suite's model never answers in time
    (suite.parent / "replies_hanging.yaml").write_text(yaml.safe_dump(hanging, allow_unicode=True), encoding="utf-8")
    spec = yaml.safe_load(suite.read_text(encoding="utf-8"))
    spec["fake_llm"] = {"script": "replies_hanging.yaml"}
    (suite.parent / "hanging.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    command = [sys.executable, "-m", "runner", "eval", "evals/push.yaml", "evals/hanging.yaml", "--jobs", "2"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True,  # its own group, as a terminal's Ctrl-C reaches
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    watchdog = threading.Timer(600, os.killpg, args=(process.pid, signal.SIGKILL))
    watchdog.start()
    try:
        assert process.stderr is not None
        seen = []
        for line in process.stderr:  # the first suite finished in its own process; the other waits on its model
            seen.append(line)
            if line.startswith("  push: reject_then_approve #1"):
                break
        os.killpg(process.pid, signal.SIGINT)
        _, rest = process.communicate(timeout=300)
    finally:
        watchdog.cancel()
    assert process.returncode == 130, "".join(seen) + rest
    assert "Traceback" not in rest and "KeyboardInterrupt" not in rest, rest
    assert "Interrupted; the suites shown above are complete" in rest, rest
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # every process of the group is gone: none left waiting on the model
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("a suite process outlived Ctrl-C")
