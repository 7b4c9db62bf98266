"""The `template` step: a value computed from earlier outputs, with no model or tool call."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from runner.dsl.kinds.base import StepKind, StepLike, Text
from runner.i18n import N_


def texts(step: StepLike, value: Any) -> Iterator[Text]:
    yield ("template",), value, step.map is not None


KIND = StepKind("template", Any, N_("kind|template"), (
    "a value computed with no LLM or tool call: one `${{ }}` expression (its value kept: a list stays a list), "
    "a multi-line text with expressions, or a mapping or list whose texts are rendered"), texts=texts)
