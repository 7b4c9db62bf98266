"""An inline map body (`map:` with `steps:`) as the sub-playbook it runs as: the playbook's inputs, the body's
steps, its `outputs:` (default: its last step's output), and a source map into the playbook's own file, so what
validate says about a body's step points at that step's line. Pure."""

from __future__ import annotations

from dataclasses import replace

from runner.dsl.load import LoadedPlaybook
from runner.dsl.spec import PlaybookSpec, Step
from runner.dsl.yaml_loader import SourceMap

LAST_OUTPUT = "output"  # the one output of a body that declares none: its last step's


def body_playbook(parent: LoadedPlaybook, index: int, step: Step) -> LoadedPlaybook:
    """The body of `parent`'s step number `index` as a playbook of its own."""
    assert step.steps is not None
    outputs = step.outputs if step.outputs is not None else {
        LAST_OUTPUT: "${{ steps." + step.steps[-1].id + ".output }}"}
    spec = PlaybookSpec.model_validate({
        "name": f"{parent.spec.name}__{step.id}", "title": step.title, "inputs": parent.spec.inputs,
        "env": parent.spec.env, "secrets": parent.spec.secrets, "defaults": parent.spec.defaults,
        "limits": parent.spec.limits, "steps": step.steps, "outputs": outputs})
    prefix = ("steps", index)
    # ("steps", index, "steps", j, …) in the file is ("steps", j, …) in the body; its `outputs` likewise
    marks = {path[2:]: mark for path, mark in parent.source.marks.items() if path[:2] == prefix}
    marks.setdefault((), parent.source.locate(prefix))
    return replace(parent, spec=spec, source=SourceMap(parent.source.file, marks))


def body_result(step: Step, outputs: dict[str, object]) -> object:
    """What one item of the body gives: its declared outputs, or its last step's output."""
    return outputs if step.outputs is not None else outputs.get(LAST_OUTPUT)
