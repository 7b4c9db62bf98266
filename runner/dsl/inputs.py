"""Input values against their declared types: CLI strings are coerced, everything else checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner.dsl.spec import InputSpec, PlaybookSpec
from runner.errors import Diagnostic, PlaybookValidationError, did_you_mean
from runner.i18n import _, ngettext
from runner.messages import kind_of

_TRUE = {"true", "yes", "1", "on", "是"}
_FALSE = {"false", "no", "0", "off", "否"}


def coerce(name: str, spec: InputSpec, value: Any) -> Any:
    """Return the value as its declared type, or raise ValueError saying what was expected."""
    kind = spec.type
    if kind in ("string", "file"):
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ValueError(_("expected text, got {value}").format(value=kind_of(value)))
        value = str(value)
        if spec.max_length is not None and len(value) > spec.max_length:
            raise ValueError(_("{length} characters; at most {limit} are allowed — shorten it").format(
                                 length=len(value), limit=spec.max_length))
    elif kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(_("expected an integer, got {value!r}").format(value=value))
        try:
            value = int(value)
        except ValueError:
            raise ValueError(_("expected an integer, got {value!r}").format(value=value)) from None
    elif kind == "number":
        if isinstance(value, bool):
            raise ValueError(_("expected a number, got {value!r}").format(value=value))
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(_("expected a number, got {value!r}").format(value=value)) from None
    elif kind == "boolean":
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            value = value.lower() in _TRUE
        if not isinstance(value, bool):
            raise ValueError(_("expected true or false, got {value!r}").format(value=value))
    elif kind == "history":
        value = _history(_flow(value, kind) if isinstance(value, str) else value)
        if spec.min_items is not None and len(value) < spec.min_items:
            raise ValueError(ngettext("give at least {count} turn (got {got})", "give at least {count} turns "
                                      "(got {got})", spec.min_items).format(count=spec.min_items, got=len(value)))
    elif kind in ("list", "object"):
        if isinstance(value, str):
            value = _flow(value, kind)
        wanted = list if kind == "list" else dict
        if not isinstance(value, wanted):
            wanted_said = _("expected a list, got {value}") if kind == "list" else _("expected a mapping, got {value}")
            raise ValueError(wanted_said.format(value=kind_of(value)))
        if spec.min_items is not None and len(value) < spec.min_items:
            raise ValueError(ngettext("give at least {count} item (got {got}), e.g. --input {name}='[…]'",
                                      "give at least {count} items (got {got}), e.g. --input {name}='[…]'",
                                      spec.min_items).format(count=spec.min_items, got=len(value), name=name))
    if spec.enum is not None and value not in spec.enum:
        raise ValueError(_("{value!r} is not one of {enum}").format(value=value, enum=spec.enum))
    return value


def _history(value: Any) -> list[dict[str, str]]:
    """Earlier turns of a conversation: [{role: user or assistant (or system), content: text}], as chat APIs
    and Dify's memory hold them."""
    if not isinstance(value, list):
        raise ValueError(_("expected a list of turns like '[{{role: user, content: 你好}}, {{role: assistant, "
                           "content: 您好}}]', got {value}").format(value=kind_of(value)))
    for j, turn in enumerate(value):
        if not (isinstance(turn, dict) and turn.get("role") in ("user", "assistant", "system")
                and isinstance(turn.get("content"), str) and set(turn) <= {"role", "content"}):
            raise ValueError(_("turn {number} is not {{role: user or assistant, content: text}}: {value}").format(
                                 number=j + 1, value=kind_of(turn) if not isinstance(turn, dict) else turn))
    return value


def _flow(text: str, kind: str) -> Any:
    """A list or object written on a command line or in a form, as people write them: YAML flow —
    `{订单数: count, 销售额: sum(amount)}`, `[AI, 手机]` — or JSON (a subset of it); a list also as `AI,手机`."""
    from runner.dsl.yaml_loader import safe_load
    from runner.errors import PlaybookError

    try:
        value = safe_load(text, "input")
    except PlaybookError as exc:
        reason = str(exc.diagnostics[0].message) if exc.diagnostics else str(exc)
        if kind == "list" and not text.lstrip().startswith("["):
            return [v.strip() for v in text.split(",") if v.strip()]
        example = {"list": "[AI, 手机]", "history": "[{role: user, content: 你好}]"}.get(
            kind, "{订单数: count, 销售额: sum(amount)}")
        sentence = _("cannot read {text!r} as an object ({reason}); write it like '{example}'") if kind == "object" \
            else _("cannot read {text!r} as a list ({reason}); write it like '{example}'")
        raise ValueError(sentence.format(text=text, reason=reason, example=example)) from None
    if kind == "list" and not isinstance(value, list):
        return [v.strip() for v in text.split(",") if v.strip()]
    if kind == "object" and not isinstance(value, dict):
        raise ValueError(_("expected a mapping like '{{订单数: count, 销售额: sum(amount)}}', got {text!r}").format(
                             text=text))
    return value


def input_file(given: str, base_dir: Path | None) -> Path:
    """Where a file input is: as given, else relative to the working folder, else to the playbook's folder."""
    path = Path(given).expanduser()
    if path.is_absolute():
        return path
    candidates = [Path.cwd() / path, *([base_dir / path] if base_dir else [])]
    return next((c for c in candidates if c.exists()), candidates[0])


def resolve_inputs(spec: PlaybookSpec, given: dict[str, Any], *, file: str,
                   base_dir: Path | None = None) -> dict[str, Any]:
    """Given values + defaults, each checked; all problems reported together."""
    problems: list[tuple[str, str]] = []  # (the input it is about, the message)
    for name in given:
        if name not in spec.inputs:
            problems.append(("", _("unknown input '{name}'{hint}").format(
                                name=name, hint=did_you_mean(name, spec.inputs))))
    values: dict[str, Any] = {}
    for name, input_spec in spec.inputs.items():
        if name in given:
            raw = given[name]
        elif input_spec.default is not None:
            raw = input_spec.default
        elif input_spec.is_required:
            problems.append((name, _("missing input '{name}' ({type}{value}); pass --input {name}=…").format(
                                name=name, type=input_spec.type,
                                value=": " + input_spec.description if input_spec.description else "")))
            continue
        else:
            values[name] = None
            continue
        try:
            values[name] = coerce(name, input_spec, raw)
        except ValueError as exc:
            problems.append((name, _("input '{name}': {exc}").format(name=name, exc=exc)))
            continue
        if input_spec.type == "file" and name in given and not input_file(values[name], base_dir).exists():
            problems.append((name, _("input '{name}': file '{path}' does not exist").format(
                                name=name, path=values[name])))
    if not problems:
        problems = [("", message) for message in unmet_requirements(spec, values)]
    if problems:
        raise PlaybookValidationError([Diagnostic(file, 0, 0, message, about=name)
                                        for name, message in problems])
    return values


def unmet_requirements(spec: PlaybookSpec, values: dict[str, Any]) -> list[str]:
    """The messages of the playbook's `requires` the inputs break (validate has checked that each reads the
    inputs alone)."""
    from runner.dsl.templates import TemplateError, render

    unmet = []
    for requirement in spec.requires:
        try:
            holds = render(requirement.that, {"inputs": values}, seconds=1.0)
        except TemplateError as exc:
            unmet.append(_("requires: {exc}").format(exc=exc))
            continue
        if not holds:
            unmet.append(requirement.message)
    return unmet
