"""What a tool generated from a Dify code node does when it runs (the generated package calls `run_main`): the
user's `main` in a worker thread, its failure said as the node's, with the line of the user's code it happened on,
and its result checked against the outputs the node declared."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import sys
import traceback
import types
from typing import Any

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from runner.i18n import _
from runner.messages import kind_of, summarise

# modules whose distribution (what pip installs) is named otherwise
_DISTRIBUTIONS = {"bs4": "beautifulsoup4", "dotenv": "python-dotenv", "yaml": "PyYAML", "PIL": "Pillow",
                  "sklearn": "scikit-learn", "cv2": "opencv-python", "docx": "python-docx",
                  "dateutil": "python-dateutil"}


def distribution(module: str) -> str:
    """What to `pip install` for a top-level module."""
    return _DISTRIBUTIONS.get(module, module.replace("_", "-"))


async def run_main(module: str, title: str, arguments: dict[str, Any], output: type[BaseModel] | None,
                   function: str = "main") -> Any:
    """`module.<function>(**arguments)`: a Dify node's dict checked against `output` (None: any value, as a Prompt
    Flow python node returns); ValueError (the step's failure) otherwise."""
    _promptflow_stand_in()
    try:
        code = importlib.import_module(module)
    except ImportError as exc:
        missing = (exc.name or str(exc)).split(".")[0]
        raise ValueError(_("the code of node '{title}' imports '{name}', which is not installed: pip install "
                           "{package}").format(title=title, name=missing, package=distribution(missing))) from None
    main = getattr(code, function)
    try:
        result = await asyncio.to_thread(main, **_as_annotated(main, arguments))
    except Exception as exc:  # the user's code: whatever it raises is its node's failure, said plainly
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == code.__file__]
        where = _(" (line {line} of {file})").format(line=frames[-1].lineno, file=f"{module.split('.')[-1]}.py") \
            if frames else ""
        raise ValueError(_("the code of node '{title}' failed: {kind}: {reason}{where}").format(
                             title=title, kind=type(exc).__name__, reason=exc, where=where)) from None
    if output is None:
        return result
    if not isinstance(result, dict):
        raise ValueError(_("the code of node '{title}' returned {value}; its main must return a dict of its "
                           "outputs").format(title=title, value=kind_of(result)))
    try:
        return output.model_validate(result)
    except PydanticValidationError as exc:
        raise ValueError(_("the code of node '{title}' returned outputs of the wrong type: {problems}").format(
                             title=title, problems=summarise(exc.errors()))) from None


def _as_annotated(main: Any, arguments: dict[str, Any]) -> dict[str, Any]:
    """A whole number given as 1.0 to an argument the code annotates `int` (`level: int`) passed as 1, as Dify
    passes it (a playbook's numbers are floats; `challenges[level]` needs an int). Nothing else is changed: Dify
    does not enforce annotations, and neither do we."""
    import inspect

    try:
        parameters = inspect.signature(main).parameters
    except (TypeError, ValueError):
        return arguments
    fixed = dict(arguments)
    for name, value in arguments.items():
        annotation = parameters[name].annotation if name in parameters else None
        if annotation in (int, "int") and isinstance(value, float) and value.is_integer():
            fixed[name] = int(value)
    return fixed


def _promptflow_stand_in() -> None:
    """Prompt Flow files import `tool` (and `log_metric`, `trace`) from promptflow to mark their functions; with
    promptflow not installed (it is retired), a stand-in whose marks change nothing lets them import unchanged."""
    if "promptflow" in sys.modules or importlib.util.find_spec("promptflow") is not None:
        return

    def mark(*args: Any, **kwargs: Any) -> Any:  # @tool, @tool(...), @trace
        if len(args) == 1 and callable(args[0]) and not kwargs:
            return args[0]
        return lambda function: function

    package = types.ModuleType("promptflow")
    core = types.ModuleType("promptflow.core")
    tracing = types.ModuleType("promptflow.tracing")
    core.tool = package.tool = mark  # type: ignore[attr-defined]
    core.log_metric = package.log_metric = lambda *args, **kwargs: None  # type: ignore[attr-defined]
    tracing.trace = package.trace = mark  # type: ignore[attr-defined]
    package.core, package.tracing = core, tracing  # type: ignore[attr-defined]
    sys.modules.update({"promptflow": package, "promptflow.core": core, "promptflow.tracing": tracing})
