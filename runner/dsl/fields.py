"""The DSL's shared field types: the strict base model, step ids and durations. Every model of the DSL (the
playbook's in runner/dsl/spec.py, each step kind's in runner/dsl/kinds/) is built on these."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from runner.i18n import _

ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """'90s', '5m', '24h', '1d' or a number of seconds → seconds."""
    if isinstance(value, bool):
        raise ValueError(_("a duration is a number of seconds or a string like '60s', '5m', '24h'"))
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(_("'{value}' is not a duration; write it like '60s', '5m', '24h' or '1d'").format(
                             value=value))
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema({
    "anyOf": [{"type": "number"}, {"type": "string", "pattern": _DURATION.pattern}],
    "description": "seconds, or a string like '60s', '5m', '24h', '1d'"})]
StepId = Annotated[str, Field(pattern=ID_PATTERN)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
