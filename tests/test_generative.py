"""Random small playbooks keep the validate contract (tests/playbook_generator.py): refused by validate with a line,
or done with every step on the path taken run exactly once, or failed naming a step — never a traceback, never a
silent skip. A few hundred cases here; `python benchmarks/generative.py --cases 3000` runs thousands."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.config import load_project
from runner.engine.execute import Runner
from runner.testing import FakeLLMServer
from tests.playbook_generator import CHILD, Tally, check_case, generate

pytestmark = pytest.mark.usefixtures("english")  # these tests check what the messages say, in English

CASES = 300


def test_random_playbooks_keep_the_validate_contract(project_dir: Path, server: FakeLLMServer) -> None:
    (project_dir / "child.yaml").write_text(CHILD, encoding="utf-8")
    runner = Runner(load_project())
    tally = Tally()
    try:
        for seed in range(CASES):
            check_case(generate(seed), project_dir, runner, tally)
    finally:
        runner.close()
    assert not tally.broken, "\n".join([tally.line(), *tally.broken[:20]])
    # the generator reaches every outcome, so the contract is tested on each
    assert tally.refused >= 20 and tally.done >= 40 and tally.failed_named >= 8, tally.line()
