"""What validate checks of an `llm` step beyond its fields' types: which of its texts are templates and whether
they may read the map's item, and what a batched map can send. Pure: step in, findings out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from runner.dsl import templates
from runner.dsl.spec import Step
from runner.i18n import _


def batched(step: Step) -> bool:
    """A map whose items go several to one call: only its prompt is written per item."""
    return step.llm is not None and step.map is not None and (step.batch or 1) > 1


def llm_templates(step: Step) -> Iterator[tuple[tuple[Any, ...], Any, bool]]:
    """(path under `llm`, the value, whether it may read the map's item) for each field rendered when it runs."""
    spec = step.llm
    assert spec is not None
    per_item = step.map is not None
    whole_call = per_item and not batched(step)  # a batch renders these once for all its items
    yield ("system",), spec.system, whole_call
    for j, message in enumerate(spec.messages or []):
        yield ("messages", j, "content"), message.content, whole_call
    yield ("history",), spec.history, whole_call
    yield ("prompt",), spec.prompt, per_item
    yield ("images",), spec.images, whole_call
    for name, value in spec.sampling.items():
        yield (name,), value, whole_call


def llm_problems(step: Step) -> Iterator[tuple[tuple[Any, ...], str]]:
    """(path under `llm`, message) for what the step's fields allow one by one but not together."""
    spec = step.llm
    assert spec is not None
    if spec.history is not None and templates.lone_expression(spec.history) is None:
        yield ("history",), _("step '{step}': history is one expression giving the earlier turns, like "
                              "`${{{{ inputs.history }}}}`").format(step=step.id)
    if not batched(step):
        return
    if spec.prompt is None:
        yield (), _("step '{step}': a batched map sends each item's prompt in one call; give `prompt:` (the part "
                    "written per item) or remove `batch`").format(step=step.id)
    for name in ("history", "images"):
        if getattr(spec, name) is not None:
            yield (name,), _("step '{step}': {name} cannot go with `batch` (one call carries several items); "
                             "remove `batch` to send it with each item").format(step=step.id, name=name)
