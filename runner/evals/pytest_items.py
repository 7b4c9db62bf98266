"""Eval suites as pytest tests: every `evals/*.yaml` suite is a file, every case a test item.

The suite runs once (on its first item) — from its cassette when one exists, else live — and each item
passes or fails with its case. `--eval-mode live|replay|record` forces a mode. Registered through the
`pytest11` entry point (`runner/pytest_plugin.py`), so `pytest evals/` works in any project that installs this package.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.errors import PlaybookError


def is_suite(path: Path) -> bool:
    if path.suffix not in (".yaml", ".yml") or path.parent.name != "evals":
        return False
    head = path.read_text(encoding="utf-8", errors="replace")
    return any(line.startswith("playbook:") for line in head.splitlines())


class SuiteFile(pytest.File):
    result: Any = None
    error: str | None = None
    cassette: Path | None = None  # found while collecting, so running does not load the suite again

    def collect(self) -> Iterator[pytest.Item]:
        from runner.evals.load import load_suite

        try:
            suite = load_suite(self.path)
        except PlaybookError as exc:
            self.error = str(exc)
            yield CaseItem.from_parent(self, name="suite", case_id=None)
            return
        self.cassette = suite.cassette_path
        for case in suite.cases:
            yield CaseItem.from_parent(self, name=case.id, case_id=case.id)

    def run_once(self) -> Any:
        if self.result is None and self.error is None:
            from runner.config import load_project
            from runner.evals.session import EvalOptions, evaluate_suite

            mode = self.config.getoption("eval_mode")
            if mode == "auto":
                mode = "replay" if self.cassette is not None and self.cassette.is_file() else "live"
            try:
                self.result = evaluate_suite(self.path, EvalOptions(mode=mode),
                                             project=load_project(self.config.rootpath))
            except PlaybookError as exc:
                self.error = str(exc)
        return self.result


class CaseItem(pytest.Item):
    def __init__(self, *, case_id: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case_id = case_id

    def runtest(self) -> None:
        from runner.evals.report import failure_lines

        parent = self.parent
        assert isinstance(parent, SuiteFile)
        result = parent.run_once()
        if parent.error is not None:
            raise EvalFailure(parent.error)
        case = next(c for c in result.report["cases"] if c["id"] == self.case_id)
        regressed = self.case_id in (result.report.get("comparison") or {}).get("regressed_cases", [])
        if not case["passed"] or regressed:
            lines = failure_lines(case) + (["regressed against the baseline"] if regressed else [])
            raise EvalFailure("\n".join(lines) + f"\nreport: {result.files['html']}")

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        if isinstance(excinfo.value, EvalFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"eval case {self.name}"


class EvalFailure(Exception):
    pass
