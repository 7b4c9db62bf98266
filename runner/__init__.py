"""playbook runner: YAML playbooks for product-operations work.

The public API. Names load lazily, so `import runner` (and `playbook --help`) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers see: the real names (at run time they load lazily, below)
    from runner.assembly import assemble
    from runner.config import load_project
    from runner.dsl.inputs import resolve_inputs
    from runner.dsl.validate import Playbook, load_and_validate
    from runner.engine.events import Hooks
    from runner.engine.execute import Runner, RunOutcome
    from runner.engine.preflight import prepare_inputs
    from runner.errors import CompileError, Diagnostic, LoadError, PlaybookError, PlaybookValidationError, RunError
    from runner.evals.load import SuiteError, load_suite
    from runner.evals.session import EvalOptions, EvalResult, evaluate_suite
    from runner.registry import ToolContext, tool
    from runner.store import Store, open_store
    from runner.testing import FakeLLMServer, Faults

__all__ = [
    "CompileError", "Diagnostic", "EvalOptions", "EvalResult", "FakeLLMServer", "Faults", "Hooks", "LoadError",
    "Playbook", "PlaybookError", "PlaybookValidationError", "RunError", "RunOutcome", "Runner", "Store",
    "SuiteError", "ToolContext", "assemble", "evaluate_suite", "load_and_validate", "load_project", "load_suite",
    "open_store", "prepare_inputs", "resolve_inputs", "tool",
]

_WHERE = {
    "CompileError": "runner.errors", "Diagnostic": "runner.errors", "LoadError": "runner.errors",
    "PlaybookError": "runner.errors", "PlaybookValidationError": "runner.errors",
    "RunError": "runner.errors", "FakeLLMServer": "runner.testing", "Faults": "runner.testing",
    "Hooks": "runner.engine.events", "Playbook": "runner.dsl.validate", "load_and_validate": "runner.dsl.validate",
    "RunOutcome": "runner.engine.execute", "Runner": "runner.engine.execute", "ToolContext": "runner.registry",
    "tool": "runner.registry", "load_project": "runner.config", "resolve_inputs": "runner.dsl.inputs",
    "EvalOptions": "runner.evals.session", "EvalResult": "runner.evals.session",
    "evaluate_suite": "runner.evals.session",
    "SuiteError": "runner.evals.load", "load_suite": "runner.evals.load",
    "Store": "runner.store", "open_store": "runner.store",
    "assemble": "runner.assembly", "prepare_inputs": "runner.engine.preflight",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'runner' has no attribute '{name}'")
