"""Read a playbook file into `PlaybookSpec`, turning every pydantic error into `file:line:col`."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
from pydantic import BaseModel

from runner.dsl.kinds import KindError, load_plugin_kinds
from runner.dsl.spec import PlaybookSpec, StepProblem
from runner.dsl.yaml_loader import SourceMap, load_yaml
from runner.errors import Diagnostic, LoadError, did_you_mean
from runner.i18n import _
from runner.messages import FORMS, clean_location, kind_of, merged, plain


@dataclass
class LoadedPlaybook:
    spec: PlaybookSpec
    source: SourceMap
    path: Path
    text: str


MAX_PLAYBOOK_BYTES = 1_000_000  # a playbook is instructions; data (a list, a document) goes in a file input


def load_playbook(path: str | Path, text: str | None = None) -> LoadedPlaybook:
    """Load and model-check one playbook. `text` overrides the file's content (resume snapshots)."""
    file = Path(path)
    shown = str(path)
    if text is None:
        text = read_playbook_text(file)
    try:
        load_plugin_kinds()  # before the model reads a step: a plugin kind's key is one of its keys
    except (KindError, ImportError) as exc:
        said = _("a step-kind plugin did not load: {exc}").format(exc=exc)
        raise LoadError([Diagnostic(shown, 0, 0, said)]) from None
    data, source = load_yaml(text, shown)
    if not isinstance(data, dict):
        raise LoadError([source.diag((), _("a playbook is a mapping with at least 'name' and 'steps'"))])
    spec = model_check(PlaybookSpec, data, source)
    return LoadedPlaybook(spec, source, file, text)


def read_playbook_text(path: Path) -> str:
    """A playbook file's text; LoadError when it is too big to be one, missing, not UTF-8 or unreadable."""
    shown = str(path)
    try:
        if (size := path.stat().st_size) > MAX_PLAYBOOK_BYTES:
            raise LoadError([Diagnostic(shown, 0, 0, _("is {number:.1f} MB; a playbook is at most {number2:g} "
                                                       "MB — put data in a file and pass it as a `type: file` "
                                                       "input").format(
                                                         number=size / 1000000.0,
                                                         number2=MAX_PLAYBOOK_BYTES / 1000000.0))])
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LoadError([Diagnostic(shown, 0, 0, _("no such file"))]) from None
    except UnicodeDecodeError as exc:
        said = _("not UTF-8 text ({reason} at byte {start}); save the file as UTF-8").format(reason=exc.reason,
                                                                                              start=exc.start)
        raise LoadError([Diagnostic(shown, 0, 0, said)]) from None
    except OSError as exc:
        said = _("cannot read: {reason}").format(reason=exc.strerror)
        raise LoadError([Diagnostic(shown, 0, 0, said)]) from None


M = typing.TypeVar("M", bound=BaseModel)


def model_check(model: type[M], data: Any, source: SourceMap) -> M:
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise LoadError(diagnostics(model, exc.errors(), source)) from None


def diagnostics(model: type[BaseModel], errors: list[Any], source: SourceMap) -> list[Diagnostic]:
    """One diagnostic per place: the alternatives of a field that takes several forms become one message."""
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for err in errors:
        groups.setdefault(clean_location(err["loc"]), []).append(err)
    found = []
    for loc, group in groups.items():
        if len(group) == 1:
            found.append(to_diagnostic(model, {**group[0], "loc": loc}, source))
        else:
            found.append(source.diag(loc, f"{_describe(loc)}{merged(group)[0][1]}"))
    return found


def to_diagnostic(model: type[BaseModel], err: Any, source: SourceMap) -> Diagnostic:
    loc = tuple(err["loc"])
    kind = err["type"]
    where = _describe(loc)
    msg = plain(err)
    field = next((p for p in reversed(loc) if isinstance(p, str)), "")
    if field in FORMS and kind in ("model_type", "dict_type", "model_attributes_type", "list_type"):
        return source.diag(loc, where + _("{value} does not fit: {forms}").format(value=kind_of(err.get("input")),
                                                                                 forms=_(FORMS[field])))
    if kind == "extra_forbidden":
        field = str(loc[-1])
        valid = _fields_at(model, loc[:-1])
        return source.diag(loc, _("{where}unknown field '{field}'{hint}").format(
                                    where=where, field=field, hint=did_you_mean(field, valid)), key=True)
    if kind == "missing":
        return source.diag(loc[:-1], _("{where}missing required field '{name}'").format(
                                         where=_describe(loc[:-1]), name=loc[-1]))
    if kind == "value_error" and isinstance((err.get("ctx") or {}).get("error"), StepProblem):
        return source.diag(loc, msg)
    return source.diag(loc, f"{where}{msg}")


def _describe(loc: tuple[Any, ...]) -> str:
    parts = [str(p) if isinstance(p, str) else f"[{p}]" for p in loc]
    text = ".".join(parts).replace(".[", "[")
    return f"{text}: " if text else ""


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names (aliases) of the model found by following `loc` from `model`."""
    current: Any = model
    for part in loc:
        current = _child_type(current, part)
        if current is None:
            return []
    current = _model_of(current)
    if current is None:
        return []
    extension = getattr(current, "extension_fields", None)
    return [f.alias or name for name, f in current.model_fields.items()] + list(extension() if extension else [])


def _child_type(annotation: Any, part: Any) -> Any:
    model = _model_of(annotation)
    if model is not None and isinstance(part, str):
        for name, f in model.model_fields.items():
            if part in (name, f.alias):
                return f.annotation
        extension = getattr(model, "extension_fields", None)  # the Step model's plugin kinds
        return extension().get(part) if extension is not None else None
    for arg in _unwrap(annotation):
        origin = typing.get_origin(arg)
        if origin is list and isinstance(part, int):
            return typing.get_args(arg)[0]
        if origin is dict and isinstance(part, str):
            return typing.get_args(arg)[1]
    return None


def _unwrap(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return [a for arg in typing.get_args(annotation) for a in _unwrap(arg)]
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    return [annotation]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    for arg in _unwrap(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None
