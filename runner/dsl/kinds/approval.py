"""The `approval` step: the run pauses until a person approves, edits or rejects the draft it shows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field

from runner.dsl.fields import Duration, Model, StepId
from runner.dsl.kinds.base import StepKind, StepLike, Text
from runner.i18n import N_


class ApprovalSpec(Model):
    title: str = Field(description="what the reviewer is asked to approve")
    show: Any = Field(None, description="the draft shown to the reviewer (template or value)")
    instructions: str | None = None
    editable: list[str] = Field(default_factory=list, description="fields of the draft the reviewer "
                                                                  "may change")
    on_reject: StepId | None = Field(None, description="step to re-run with ${{ approval.comment }}")
    sources: Any = Field(None, description="the passages the draft may cite (template; kb.search's passages: each "
                                           "with `cite` and `text`): each is shown beside the draft's values that "
                                           "name its cite, on the approval page and in the console")
    timeout: Duration | None = None
    on_timeout: Literal["approve", "reject", "fail"] = "fail"


def texts(step: StepLike, spec: ApprovalSpec) -> Iterator[Text]:
    for name in ("title", "show", "instructions", "sources"):
        yield ("approval", name), getattr(spec, name), False


KIND = StepKind("approval", ApprovalSpec, N_("kind|approval"), "pause for a person to approve, edit or reject",
                can_map=False, on_error=False, pauses=True, texts=texts)
