"""The `switch` step: the first case whose condition holds names the next step."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from runner.dsl.fields import Model
from runner.dsl.kinds.base import StepKind, StepLike, Text
from runner.i18n import N_


class SwitchCase(Model):
    if_: str = Field(alias="if", description="condition expression")
    goto: str = Field(description="step id, or 'end'")


class SwitchSpec(Model):
    cases: list[SwitchCase] = Field(min_length=1)
    default: str | None = Field(None, description="step id or 'end'; omitted: the next step")


def texts(step: StepLike, spec: SwitchSpec) -> Iterator[Text]:
    for j, case in enumerate(spec.cases):
        yield ("switch", "cases", j, "if"), case.if_, False


KIND = StepKind("switch", SwitchSpec, N_("kind|switch"), "route: the first case whose `if` holds names the next step",
                can_map=False, on_error=False, routes=True, texts=texts)
