"""What a tool generated from a Dify code node does when it runs (the generated package calls `run_main`): the
user's `main` in a worker thread, its failure said as the node's, with the line of the user's code it happened on,
and its result checked against the outputs the node declared."""

from __future__ import annotations

import asyncio
import importlib
import traceback
from typing import Any

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from runner.i18n import _
from runner.messages import kind_of, summarise


async def run_main(module: str, title: str, arguments: dict[str, Any], output: type[BaseModel]) -> BaseModel:
    """`module.main(**arguments)`, its dict checked against `output`; ValueError (the step's failure) otherwise."""
    try:
        code = importlib.import_module(module)
    except ImportError as exc:
        raise ValueError(_("the code of node '{title}' imports '{name}', which is not installed: pip install "
                           "{name}").format(title=title, name=exc.name or exc)) from None
    try:
        result = await asyncio.to_thread(code.main, **arguments)
    except Exception as exc:  # the user's code: whatever it raises is its node's failure, said plainly
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == code.__file__]
        where = _(" (line {line} of {file})").format(line=frames[-1].lineno, file=f"{module.split('.')[-1]}.py") \
            if frames else ""
        raise ValueError(_("the code of node '{title}' failed: {kind}: {reason}{where}").format(
                             title=title, kind=type(exc).__name__, reason=exc, where=where)) from None
    if not isinstance(result, dict):
        raise ValueError(_("the code of node '{title}' returned {value}; its main must return a dict of its "
                           "outputs").format(title=title, value=kind_of(result)))
    try:
        return output.model_validate(result)
    except PydanticValidationError as exc:
        raise ValueError(_("the code of node '{title}' returned outputs of the wrong type: {problems}").format(
                             title=title, problems=summarise(exc.errors()))) from None
