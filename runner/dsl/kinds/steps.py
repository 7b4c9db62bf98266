"""`steps:` under a map, the inline body: these steps run for each item, as a sub-playbook written in place."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from runner.dsl.kinds.base import KindChecker, StepKind, StepLike, Text
from runner.i18n import N_


def texts(step: StepLike, body: Any) -> Iterator[Text]:
    yield ("with",), step.with_, True  # the body's own texts are checked when it is validated as a playbook


def check(checker: KindChecker, i: int, step: StepLike, body: Any) -> None:
    checker.check_body(i, step)  # validated as the sub-playbook it runs as: runner/dsl/validate.py


KIND = StepKind("steps", list, N_("kind|inline body"), (
    "an inline map body: these steps run for each item of `map:`, reading the item (`item` or the `as:` name), "
    "the playbook's inputs and the values given in `with:`"), takes_with=True, needs_map=True, billed=True,
                runs_steps=True, texts=texts, check=check)
