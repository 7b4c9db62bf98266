"""The `playbook` step: another playbook file run as one step, its inputs given under `with:`."""

from __future__ import annotations

from collections.abc import Iterator

from runner.dsl.kinds.base import KindChecker, StepKind, StepLike, Text
from runner.i18n import N_


def texts(step: StepLike, path: str) -> Iterator[Text]:
    yield ("with",), step.with_, step.map is not None


def check(checker: KindChecker, i: int, step: StepLike, path: str) -> None:
    checker.check_child(i, step)  # validated as a playbook of its own: runner/dsl/validate.py


KIND = StepKind("playbook", str, N_("kind|sub-playbook"), "path of a sub-playbook, relative to this file",
                takes_with=True, billed=True, runs_steps=True, texts=texts, check=check)
