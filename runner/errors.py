"""Error classes, one per phase, each carrying source-located diagnostics.

User mistakes are reported as `file:line:col: message` and exit code 2; the CLI never shows a
traceback for them. Runtime failures (a provider down, a tool failing) are `RunError` (exit 1).
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from runner.i18n import LANGUAGES, N_, _, catalog
from runner.wording import status


@dataclass(frozen=True, order=True)
class Diagnostic:
    file: str
    line: int
    col: int
    message: str
    about: str = field(default="", compare=False)  # the input or field it is about, for a form to show it there

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.col}: {self.message}"
        return f"{self.file}: {self.message}" if self.file else self.message


class PlaybookError(Exception):
    """A user error: bad YAML, bad fields, bad references, bad inputs. Exit code 2."""

    exit_code = 2

    def __init__(self, diagnostics: Iterable[Diagnostic] | str) -> None:
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic("", 0, 0, diagnostics)]
        self.diagnostics = sorted(set(diagnostics))
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class StoreUnreachable(PlaybookError):
    """The store's database did not answer (down, restarting, a wrong URL): work that met it is tried again later,
    not failed."""


class LoadError(PlaybookError):
    """The file cannot be read or parsed, or does not match the DSL models."""


class PlaybookValidationError(PlaybookError):
    """Static checks failed: references, tools, templates, cycles, input types."""


class CompileError(PlaybookError):
    """The validated playbook cannot be turned into a graph."""


class RunError(Exception):
    """A run failed at execution time (exit code 1); finished work stays in the journal."""

    exit_code = 1
    resumable = True  # `playbook resume` may finish it once the cause is gone (a network, a model, a file)

    def __init__(self, message: str, *, step: str | None = None, details: dict[str, Any] | None = None) -> None:
        self.step = step
        self.reason = message  # without the step's name, for per-item error lists
        self.details = details or {}  # e.g. {status: 404, url: …} of an HTTP error, for on_error and `when`
        super().__init__(at_step(step, message) if step else message)


class TemplateFailed(RunError):
    """A `${{ }}` of the playbook could not be evaluated. Resuming runs the same playbook text again, so only a
    corrected playbook, run anew, gets past it."""

    resumable = False


class NoSuchRun(RunError):
    """A run id this project's store does not know — usually a command given in another folder."""

    def __init__(self, run_id: str, location: str) -> None:
        super().__init__(_("no run '{run_id}' in {location}. Runs belong to the project folder they were started "
                           "in (its .playbook/ folder): run the command there, or point at that folder with "
                           "--project DIR or PLAYBOOK_PROJECT=DIR; `playbook runs list` shows this project's runs")
                         .format(run_id=run_id, location=location))


class DecisionTaken(RunError):
    """Another decision for this approval was recorded first; this one was not applied."""

    def __init__(self, run_id: str, step: str, recorded: dict[str, Any]) -> None:
        self.recorded = recorded
        if recorded.get("action") is None:
            super().__init__(_("run '{run_id}' is no longer waiting for approval; nothing was applied")
                             .format(run_id=run_id))
            return
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(recorded.get("at") or 0))
        super().__init__(_("run '{run_id}': step '{step}' was already decided — {action} by {by} at {when}; this "
                           "decision was not applied").format(run_id=run_id, step=step, when=when,
                                                              action=status(recorded.get("action")),
                                                              by=recorded.get("by")))


class TooManyFailures(RunError):
    """More map items failed than `max_failures` allows: the step fails whatever `on_error` says
    about single items (only an error branch, `on_error: {goto}`, still catches it)."""


class CostLimitReached(RunError):
    """`limits.max_cost` was exceeded; the run stops cleanly and can be resumed with a higher limit."""


class RunCancelled(RunError):
    """`playbook cancel` was asked for this run."""


class RunTakenOver(RunCancelled):
    """Another process took this run over while this one made no progress: this one stops as on a cancel (so
    whatever stops for a cancel stops for this), but writes nothing — the run is the new owner's now."""


INTERRUPTED = N_("Interrupted before it finished; what finished is kept. To continue: playbook resume {run_id}")


def interrupted(run_id: str) -> str:
    """The error an interrupted run keeps (Ctrl-C, SIGTERM, a kill the next command notices)."""
    return _(INTERRUPTED).format(run_id=run_id)


def was_interrupted(run_id: str, error: str | None) -> bool:
    """Whether a failed run's error is the interrupted one, in any language (and as runs recorded before the
    catalog said it)."""
    said = {catalog(language).gettext(INTERRUPTED).format(run_id=run_id) for language in LANGUAGES}
    return error in said | {f"运行未完成就被中断了；已完成的部分都保存着，继续运行：playbook resume {run_id}",
                            f"interrupted before it finished; finished work is kept — resume with "
                            f"`playbook resume {run_id}`"}


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, else the list of valid choices."""
    options = sorted(set(choices))
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    if close:
        return _(" (did you mean '{name}'?)").format(name=close[0])
    if not options:
        return ""
    shown = ", ".join(options[:12]) + (", …" if len(options) > 12 else "")
    return _(" (valid: {choices})").format(choices=shown)


def framed(where: str, message: str) -> str:
    """`where: message` — a location or a name, then what is wrong there — with the language's colon."""
    return _("{where}: {message}").format(where=where, message=message)


def at_step(step: str, message: str) -> str:
    """A message about one step, framed with its id: `step 'load': …`."""
    return _("step '{step}': {message}").format(step=step, message=message)
