"""The executor of each step kind, one module each, registered in EXECUTORS by `@step_kind` (what each kind allows
and does is described in runner/dsl/kinds/)."""

from runner.engine.nodes import agent, approval, llm, subplaybook, switch, template, tool
from runner.engine.nodes.base import EXECUTORS, ItemExecutor, RunContext, StepContext, executor_of, step_kind

__all__ = ["EXECUTORS", "ItemExecutor", "RunContext", "StepContext", "agent", "approval", "executor_of", "llm",
           "step_kind", "subplaybook", "switch", "template", "tool"]
