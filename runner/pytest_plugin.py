"""The pytest plugin (entry point `pytest11: playbook_runner`): the `fake_llm` fixture, and eval suites
(`evals/*.yaml`) collected as tests, one item per case, with `--eval-mode`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.testing import FakeLLMServer


@pytest.fixture
def fake_llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


def pytest_addoption(parser: Any) -> None:
    parser.addoption("--eval-mode", default="auto", choices=["auto", "live", "replay", "record"],
                     help="eval suites under evals/: auto = replay when a cassette exists, else live")


def pytest_collect_file(parent: Any, file_path: Path) -> Any:
    """Eval suites (`evals/*.yaml`) are collected as tests, one item per case."""
    from runner.evals.pytest_items import SuiteFile, is_suite

    return SuiteFile.from_parent(parent, path=file_path) if is_suite(file_path) else None
