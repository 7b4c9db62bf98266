"""The `llm` step: one model call (or one per map item, or per batch of items). Beyond its fields' types: which
of its texts are templates and whether they may read the map's item, and what a batched map can send."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from runner.dsl import templates
from runner.dsl.kinds.base import KindChecker, StepKind, StepLike, Text
from runner.dsl.llm_spec import LlmSpec
from runner.i18n import N_, _


def batched(step: StepLike) -> bool:
    """A map whose items go several to one call: only its prompt is written per item."""
    return step.map is not None and (step.batch or 1) > 1


def texts(step: StepLike, spec: LlmSpec) -> Iterator[Text]:
    """(path under the step, the value, whether it may read the map's item) for each field rendered when it runs."""
    per_item = step.map is not None
    whole_call = per_item and not batched(step)  # a batch renders these once for all its items
    yield ("llm", "system"), spec.system, whole_call
    for j, message in enumerate(spec.messages or []):
        yield ("llm", "messages", j, "content"), message.content, whole_call
    yield ("llm", "history"), spec.history, whole_call
    yield ("llm", "prompt"), spec.prompt, per_item
    yield ("llm", "images"), spec.images, whole_call
    for name, value in spec.sampling.items():
        yield ("llm", name), value, whole_call


def check(checker: KindChecker, i: int, step: StepLike, spec: LlmSpec) -> None:
    for path, message in problems(step, spec):
        checker.error(("steps", i, "llm", *path), message)
    if spec.output is not None:
        checker.check_output(i, step, "llm", spec.output)


def problems(step: StepLike, spec: LlmSpec) -> Iterator[tuple[tuple[Any, ...], str]]:
    """(path under `llm`, message) for what the step's fields allow one by one but not together."""
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


KIND = StepKind("llm", LlmSpec, N_("kind|LLM"), "one model call: a prompt (and system, messages, history, images) "
                "and the model's parameters", can_batch=True, calls_model=True, billed=True, texts=texts, check=check)
