"""The step kinds are described once (runner/dsl/kinds/): the Step model, validate, lint, the engine's executors and
the map runner read those records. These tests hold every phase to them, so a kind added in one place and
forgotten in another fails here, not in a user's run (it once passed validate and failed with a KeyError)."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from runner.dsl.kinds import KINDS
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
    assert list(BODIES) == list(KINDS)
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
