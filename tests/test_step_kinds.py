"""The step kinds are described once (runner/dsl/kinds/): the Step model, validate, lint, the engine's executors and
the map runner read those records. These tests hold every phase to them, so a kind added in one place and
forgotten in another fails here, not in a user's run (it once passed validate and failed with a KeyError)."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from runner.dsl.kinds import KINDS, KindError, StepKind, register_kind, unregister_kind
from runner.dsl.load import load_playbook
from runner.dsl.spec import Step
from runner.dsl.validate import validate
from runner.engine.nodes import EXECUTORS
from runner.errors import PlaybookError

pytestmark = pytest.mark.usefixtures("english")

# one valid body per kind, so each rule below can be tried on every kind
BODIES: dict[str, dict[str, typing.Any]] = {
    "llm": {"llm": {"prompt": "hi"}},
    "tool": {"tool": "file.read", "with": {"path": "notes.txt"}},
    "agent": {"agent": {"prompt": "hi", "tools": ["web.fetch"]}},
    "approval": {"approval": {"title": "ok?"}},
    "switch": {"switch": {"cases": [{"if": "${{ true }}", "goto": "end"}]}},
    "playbook": {"playbook": "child.yaml"},
    "template": {"template": "hi"},
    "steps": {"steps": [{"id": "inner", "template": "${{ item }}"}], "map": [1, 2]},
}


def test_every_kind_has_a_body_here_a_field_on_step_and_an_executor() -> None:
    assert list(BODIES) == list(KINDS)  # the built-in kinds (a test's plugin kind is gone after it)
    assert sorted(EXECUTORS) == sorted(KINDS)
    for name, kind in KINDS.items():
        annotation = Step.model_fields[name].annotation
        members = typing.get_args(annotation) or (annotation,)  # `X | None`, or `Any`, which holds None itself
        assert type(None) in members or annotation is typing.Any, name
        declared = next(m for m in members if m is not type(None))
        assert (typing.get_origin(declared) or declared) is kind.spec, (name, declared, kind.spec)
        assert Step.model_fields[name].description == kind.description


def _problems(tmp_path: Path, body: dict[str, typing.Any], **extra: typing.Any) -> str:
    import yaml

    (tmp_path / "child.yaml").write_text("name: child\ninputs:\n  path: {default: x}\nsteps:\n  - id: a\n"
                                         "    template: hi\n", encoding="utf-8")
    step = {"id": "s", **body, **extra}
    text = yaml.safe_dump({"name": "p", "inputs": {"rows": {"type": "list", "default": [1]}},
                           "steps": [step, {"id": "last", "template": "done"}]}, allow_unicode=True)
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        validate(load_playbook(path))
    except PlaybookError as exc:
        return str(exc)
    return ""


@pytest.mark.parametrize("name", list(KINDS))
def test_validate_follows_each_kinds_record(tmp_path: Path, name: str) -> None:
    kind, body = KINDS[name], BODIES[name]
    assert _problems(tmp_path, body) == ""
    mapped = {"map": "${{ inputs.rows }}"} if "map" not in body else {}
    said = _problems(tmp_path, body, **mapped)
    assert ("cannot map" in said) is (not kind.can_map), said
    if kind.can_map:
        said = _problems(tmp_path, {**body, **mapped}, batch=5)
        assert ("'batch' applies to llm steps only" in said) is (not kind.can_batch), said
    said = _problems(tmp_path, body, on_error="skip")
    assert ("on_error does not apply" in said) is (not kind.on_error), said
    said = _problems(tmp_path, body, goto="last")
    assert ("routes with its cases" in said) is kind.routes, said
    if "with" not in body:
        said = _problems(tmp_path, body, **{"with": {"x": 1}})
        assert ("'with' belongs to" in said) is (not kind.takes_with), said
    if kind.needs_map:
        said = _problems(tmp_path, {k: v for k, v in body.items() if k != "map"})
        assert "runs once per item of `map:`" in said, said


@pytest.mark.parametrize("name", list(KINDS))
def test_every_text_a_kind_renders_is_checked_and_linted(tmp_path: Path, name: str) -> None:
    """A kind's `texts` are what validate checks as templates and lint reads for another tool's syntax: an unknown
    step named in one is refused at its own path, and a Dify-style `{{#node.var#}}` in it is warned about."""
    import copy

    from runner.dsl.lint import foreign_templates

    step = Step.model_validate({"id": "s", **BODIES[name]})
    paths = [path for path, value, _item in KINDS[name].texts(step, step.kind_spec) if isinstance(value, str)]
    if name == "steps":  # its only text is `with:`, absent here; the body's own steps are a playbook of their own
        assert paths == []
        return
    if name in ("tool", "playbook"):
        paths = [("with", "path")]
    assert paths, name
    for path in paths:
        body = copy.deepcopy(BODIES[name])
        if name == "playbook":
            body["with"] = {"path": None}
        target = body
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = "{{#start.topic#}} ${{ steps.nowhere }}"
        said = _problems(tmp_path, body)
        assert "unknown step 'nowhere'" in said or "'nowhere'" in said, (path, said)
        spec = load_playbook(tmp_path / "p.yaml").spec
        assert ("steps", 0, *path) in [where for where, _message in foreign_templates(spec)], path


# A step kind from outside the runner, all in this one place: its field's model, its record, its executor.
class ShoutSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    times: int = Field(1, ge=1, le=5)


def _shout_texts(step: typing.Any, spec: ShoutSpec) -> typing.Iterator[tuple[tuple[typing.Any, ...], typing.Any, bool]]:
    yield ("shout", "text"), spec.text, step.map is not None


async def _shout(ctx: typing.Any, item: typing.Any, *, with_item: bool) -> str:
    spec = ctx.step.kind_spec
    return " ".join([str(ctx.render(spec.text, item, with_item=with_item)).upper()] * spec.times)


SHOUT = StepKind("shout", ShoutSpec, "kind|shout", "say a text louder", texts=_shout_texts, executor=_shout)


@pytest.fixture
def shout() -> typing.Iterator[None]:
    register_kind(SHOUT)  # the one registry entry (a package names it in the `playbook.step_kinds` entry points)
    yield
    unregister_kind("shout")


def test_a_kind_added_from_outside_validates_and_runs(shout: None, tmp_path: Path) -> None:
    import asyncio

    from runner import assemble, load_project

    (tmp_path / "pb.yaml").write_text("""
name: loud
inputs: {word: {type: string, default: hello}}
steps:
  - {id: one, shout: {text: "${{ inputs.word }}", times: 2}}
  - {id: many, map: [a, b], shout: {text: "${{ item }}!"}}
outputs: {one: "${{ steps.one.output }}", many: "${{ steps.many.output }}"}
""", encoding="utf-8")
    playbook = validate(load_playbook(tmp_path / "pb.yaml"))
    assert [s.kind for s in playbook.spec.steps] == ["shout", "shout"]
    outcome = asyncio.run(assemble(load_project(tmp_path)).start(playbook, {"word": "hello"}))
    assert outcome.status == "done", outcome.error
    assert outcome.outputs == {"one": "HELLO HELLO", "many": ["A!", "B!"]}


def test_a_kind_added_from_outside_is_checked_like_the_others(shout: None, tmp_path: Path) -> None:
    said = _problems(tmp_path, {"shout": {"text": "hi", "times": 9}})
    line = next(n for n, text in enumerate((tmp_path / "p.yaml").read_text().splitlines(), 1) if "times: 9" in text)
    assert f"p.yaml:{line}:" in said and "shout.times: should be at most 5, not 9" in said, said  # at its line
    said = _problems(tmp_path, {"shout": {"text": "${{ steps.nowhere }}"}})
    assert "'nowhere'" in said, said  # its texts are template-checked
    said = _problems(tmp_path, {"shout": {"text": "hi"}, "llm": {"prompt": "x"}})
    assert "needs exactly one of" in said and "shout" in said, said
    said = _problems(tmp_path, {"shuot": {"text": "hi"}})
    assert "did you mean 'shout'" in said, said
    from runner.dsl.json_schema import playbook_json_schema

    step_schema = playbook_json_schema()["$defs"]["Step"]
    assert step_schema["properties"]["shout"]["properties"]["times"]["maximum"] == 5
    with pytest.raises(KindError):
        register_kind(SHOUT)  # taken
    with pytest.raises(KindError):
        register_kind(StepKind("map", ShoutSpec, "kind|map", "", executor=_shout))  # a step's own key
