"""Tool registry: `@tool("family.name")` plus the `playbook.tools` entry-point group for plugins."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, Protocol

from pydantic import BaseModel

from runner.errors import PlaybookError, did_you_mean
from runner.i18n import _

ENTRY_POINT_GROUP = "playbook.tools"
BUILTIN_ENTRY_POINT = "builtin"  # pyproject.toml: [project.entry-points."playbook.tools"] builtin = "tools"


class ToolArgumentError(ValueError):
    """A tool's complaint about one of its arguments; the step's error names the argument (unless
    `about_the_argument` is false: the source it names is down or answered an error)."""

    about_the_argument = True

    def __init__(self, argument: str, message: str) -> None:
        self.argument = argument
        super().__init__(message)


_NEVER_READ = ("/proc", "/sys", "/dev")


@dataclass
class ToolContext:
    """What a tool may touch: its run's artifact folder and the paths the project allows."""

    run_id: str
    step_id: str
    run_dir: Path
    project_dir: Path
    allowed_paths: tuple[Path, ...] = ()
    base_dir: Path | None = None  # folder of the playbook file, for relative inputs
    settings: Any = None  # the project's ProjectFile (web policy, notify channels, …)
    playbook: str = ""  # name of the running playbook (runs.previous looks up its earlier runs)
    readable_paths: tuple[Path, ...] = ()  # [paths] read
    input_files: frozenset[Path] = frozenset()  # the run's `file` inputs, resolved: readable wherever they are
    store: Any = None  # the run's store (runner.store.Store): runs.previous reads earlier runs from it
    # the JSON Schema of an argument written as one expression of a step's output (its titles label a written
    # table's columns), or None: see runner.dsl.labels.expression_schema
    arg_schema: Callable[[str], Any] = lambda name: None

    @property
    def state_db(self) -> Path:
        return self.project_dir / getattr(self.settings, "state_dir", ".playbook") / "state.db"

    def _bookkeeping(self, real: Path) -> bool:
        """Whether `real` is the project's own bookkeeping — its state folder (the store, the key that signs card
        buttons, saved logins) or another run's folder — which no tool reads or writes, whatever `[paths]` allow.
        The run's own folder is the run's."""
        own = self.run_dir.resolve()
        if real == own or own in real.parents:
            return False
        state = self.project_dir / getattr(self.settings, "state_dir", ".playbook")
        artifacts = getattr(getattr(self.settings, "store", None), "artifacts", None)
        roots = [state, self.project_dir / ".playbook",  # (an eval case keeps its state elsewhere: both are kept)
                 *([self.project_dir / Path(artifacts).expanduser() / "runs"] if artifacts else [])]
        return any(real == root or root in real.parents for root in (r.resolve() for r in roots))

    def _refuse_bookkeeping(self, name: str, real: Path, argument: str) -> None:
        if self._bookkeeping(real) and real not in self.input_files:
            raise ToolArgumentError(argument, _("'{name}' is the project's own bookkeeping ({real}): run state, "
                                                "keys, saved logins and other runs' folders are not for tools; a "
                                                "run reads the project's files and writes in its own run "
                                                "folder").format(name=name, real=real))

    def artifact_path(self, name: str, argument: str = "path") -> Path:
        """Resolve a path to write: inside the run folder unless the project allows the target."""
        candidate = Path(name)
        target = (candidate if candidate.is_absolute() else self.run_dir / candidate).resolve()
        for root in (self.run_dir.resolve(), *(p.resolve() for p in self.allowed_paths)):
            if target == root or root in target.parents:
                self._refuse_bookkeeping(name, target, argument)
                target.parent.mkdir(parents=True, exist_ok=True)
                return target
        raise ToolArgumentError(argument, _("'{name}' is outside the run folder; allow it under [paths] write in "
                                            "playbook.toml or write a relative path").format(name=name))

    def input_path(self, name: str, argument: str = "path") -> Path:
        """Resolve a path to read: as given, else relative to the project, else to the playbook — and only
        inside what a run may read: the project folder, the playbook's folder, the run folder, folders under
        `[paths] read` (and `write`), and files given as `file` inputs. Never /proc, /sys or /dev, and never
        through a symlink that leads outside (the check is on the resolved path)."""
        candidate = Path(name).expanduser()
        found = candidate if candidate.is_absolute() else next(
            (base / candidate for base in (Path.cwd(), self.project_dir, self.base_dir, self.run_dir)
             if base is not None and (base / candidate).exists()), Path.cwd() / candidate)
        real = found.resolve()
        if any(real == Path(root) or Path(root) in real.parents for root in _NEVER_READ):
            raise ToolArgumentError(argument, _("'{name}' is a system path; tools do not read {name2}/").format(
                                                  name=name, name2=real.parts[1]))
        roots = (self.project_dir, self.run_dir, self.base_dir, *self.allowed_paths, *self.readable_paths)
        if real in self.input_files or any(root is not None and (real == root.resolve() or root.resolve()
                                                                 in real.parents) for root in roots):
            self._refuse_bookkeeping(name, real, argument)
            return found
        raise ToolArgumentError(argument, _("'{name}' is outside the project folder ({real}); pass it as a file "
                                            "input, or add its folder to [paths] read in playbook.toml").format(
                                              name=name, real=real))


ToolFunction = Callable[[Any, ToolContext], Awaitable[Any]]


@dataclass(frozen=True)
class ToolInfo:
    name: str
    function: ToolFunction
    input_model: type[BaseModel]
    output_model: type[BaseModel] | None
    description: str
    sends_secrets: bool = False  # its arguments carry credentials to a service (a header, a login form, a webhook)
    cpu_bound: bool = False  # seconds of CPU: it takes a CPU turn first, and its timeout counts from then
    journal: bool = True  # False: a read of local files, done again if a crash cuts its step (nothing recorded)


# A tool output field already made of JSON values (a table reader's rows): handed on as it is, not copied by
# pydantic's dump — for 200,000 rows that copy was 100 MB.
PLAIN_JSON = "plain-json"
JsonRows = Annotated[list[dict[str, Any]], PLAIN_JSON]


def output_value(result: Any) -> Any:
    """A tool's result as the step's output: a model dumped to JSON values, its PLAIN_JSON fields as they are."""
    if not isinstance(result, BaseModel):
        return result
    fields = type(result).model_fields
    plain = {name for name, info in fields.items() if PLAIN_JSON in info.metadata}
    dumped = result.model_dump(mode="json", exclude=plain)
    return {name: getattr(result, name) if name in plain else dumped[name] for name in fields
            if name in plain or name in dumped}


class ToolFixtures(Protocol):
    """Stands in for tools during an eval: rewrite a call's arguments (a recorded page served on loopback,
    a fixture sheet) or answer it outright. Returns (arguments to use, (output,) or None)."""

    def intercept(self, *, tool: str, step: str, args: dict[str, Any]) -> tuple[dict[str, Any], tuple[Any] | None]:
        ...


_TOOLS: dict[str, ToolInfo] = {}
_CLOSERS: list[Callable[[], Awaitable[None]]] = []
_active_runs = 0


def on_run_end(closer: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """Register an async function that releases a tool's shared resources (a browser) when a run's
    event loop is done with them; the executor awaits every closer after each run."""
    _CLOSERS.append(closer)
    return closer


def run_started() -> None:
    global _active_runs
    _active_runs += 1


async def close_resources() -> None:
    """Called when a run's drive ends; shared resources close only when no other run in this process is
    still going (eval cases and server runs share one event loop and one browser)."""
    global _active_runs
    _active_runs = max(0, _active_runs - 1)
    if _active_runs:
        return
    for closer in _CLOSERS:
        with contextlib.suppress(Exception):  # closing must never turn a finished run into a failed one
            await closer()
_loaded = False


def tool(name: str, *, sends_secrets: bool = False, cpu_bound: bool = False,
         journal: bool = True) -> Callable[[ToolFunction], ToolFunction]:
    """Register an async tool `fn(args: InputModel, ctx: ToolContext) -> OutputModel`. `sends_secrets`: its
    arguments are meant to carry credentials to a service; any other tool gets secret values masked (`***`), so a
    key a model echoed never lands in a file, a sheet or a message. `cpu_bound`: it waits for a CPU turn of this
    machine (runner/cpu_slots.py) before its step's timeout starts. `journal=False`: a read of local files
    with no effect elsewhere — its result (maybe a 200,000-row table) is not recorded for a resume to reuse; a
    crash inside its step reads the file again."""

    def register(fn: ToolFunction) -> ToolFunction:
        hints = typing.get_type_hints(fn)
        params = list(inspect.signature(fn).parameters)
        input_model = hints.get(params[0]) if params else None
        if not (isinstance(input_model, type) and issubclass(input_model, BaseModel)):
            raise TypeError(f"tool '{name}': first parameter must be annotated with a pydantic model")
        output = hints.get("return")
        output_model = output if isinstance(output, type) and issubclass(output, BaseModel) else None
        doc = inspect.getdoc(fn) or ""
        _TOOLS[name] = ToolInfo(name, fn, input_model, output_model, doc.split("\n")[0], sends_secrets,
                                cpu_bound, journal)
        return fn

    return register


# (tool, argument) → a cheap look at a file given as a playbook input, before any run exists: fn(path, arguments)
FileCheck = Callable[[Path, dict[str, Any]], None]
NOT_KNOWN_YET = "<computed by the run>"  # a file check's argument whose value only the run computes
_FILE_CHECKS: dict[tuple[str, str], FileCheck] = {}


def file_check(tool_name: str, argument: str) -> Callable[[FileCheck], FileCheck]:
    """Register what a tool checks of an input file it will read in `argument` (opens as its type, has rows): the
    run is refused before it starts, naming the input, instead of failing at the step. Raises ToolArgumentError."""

    def register(fn: FileCheck) -> FileCheck:
        _FILE_CHECKS[(tool_name, argument)] = fn
        return fn

    return register


def get_file_check(tool_name: str, argument: str) -> FileCheck | None:
    get_tool(tool_name)  # imports the tool's module, which registers its checks
    return _FILE_CHECKS.get((tool_name, argument))


_LAZY: dict[str, str] = {}  # tool name → the module that registers it, imported on first use


def _load_plugins() -> None:
    """Every tool package, the built-in `tools` included, comes in through the entry-point group: the
    registry names none of them. A package with a `TOOL_MODULES` catalog (tool name → module) has its
    modules imported when one of their tools is first needed; any other registers its tools on import."""
    global _loaded
    if _loaded:
        return
    found = list(entry_points(group=ENTRY_POINT_GROUP))
    if not any(ep.name == BUILTIN_ENTRY_POINT for ep in found):
        raise PlaybookError(
            _("the built-in tools are not registered: no '{BUILTIN_ENTRY_POINT}' entry point in the group "
              "'{ENTRY_POINT_GROUP}'. The package metadata is missing or stale; reinstall the project (`pip "
              "install -e .` in the clone, or `./scripts/setup`)").format(
                BUILTIN_ENTRY_POINT=BUILTIN_ENTRY_POINT, ENTRY_POINT_GROUP=ENTRY_POINT_GROUP))
    for ep in found:
        catalog = getattr(ep.load(), "TOOL_MODULES", None)
        if isinstance(catalog, dict):
            _LAZY.update({str(name): str(module) for name, module in catalog.items() if name not in _TOOLS})
    _loaded = True


def tool_names() -> set[str]:
    """Every tool's name, without importing the modules of lazily loaded ones."""
    _load_plugins()
    return set(_TOOLS) | set(_LAZY)


def all_tools() -> dict[str, ToolInfo]:
    _load_plugins()
    for name in list(_LAZY):
        get_tool(name)
    return dict(sorted(_TOOLS.items()))


def get_tool(name: str) -> ToolInfo:
    _load_plugins()
    if name not in _TOOLS and name in _LAZY:
        module = _LAZY[name]
        importlib.import_module(module)
        _LAZY.pop(name, None)
        if name not in _TOOLS:
            raise PlaybookError(_("tool '{name}': its package lists it in {module}, which does not register it; "
                                  "the package's TOOL_MODULES catalog is out of date").format(
                                    name=name, module=module))
    if name not in _TOOLS:
        raise KeyError(_("unknown tool '{name}'{hint}").format(name=name, hint=did_you_mean(name, tool_names())))
    return _TOOLS[name]
