"""The `agent` step: a model that may call the listed tools, turn after turn, until it answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import Field

from runner.dsl.fields import Model
from runner.dsl.kinds.base import KindChecker, StepKind, StepLike, Text
from runner.errors import did_you_mean
from runner.i18n import N_, _
from runner.registry import tool_names


class AgentSpec(Model):
    system: str | None = Field(None, description="system message (template)")
    prompt: str = Field(description="the task (template)")
    tools: list[str] = Field(min_length=1, description="tools the model may call, e.g. [web.fetch, feed.read]")
    max_turns: int = Field(8, ge=1, le=50, description="model turns at most (each may call several tools)")
    output: dict[str, Any] | list[Any] | str | None = Field(None, description="schema of the final answer")
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1)


def texts(step: StepLike, spec: AgentSpec) -> Iterator[Text]:
    per_item = step.map is not None
    yield ("agent", "system"), spec.system, per_item
    yield ("agent", "prompt"), spec.prompt, per_item


def check(checker: KindChecker, i: int, step: StepLike, spec: AgentSpec) -> None:
    tools = tool_names()
    for j, name in enumerate(spec.tools):
        if name not in tools:
            checker.error(("steps", i, "agent", "tools", j), _("step '{step}': unknown tool '{name}'{hint}").format(
                              step=step.id, name=name, hint=did_you_mean(name, tools)))
    if spec.output is not None:
        checker.check_output(i, step, "agent", spec.output)


KIND = StepKind("agent", AgentSpec, N_("kind|agent"), "a model that calls tools until it answers",
                calls_model=True, billed=True, texts=texts, check=check)
