"""Step kinds, one module each, registered in STEP_KINDS by `@step_kind`."""

from runner.engine.nodes import agent, approval, llm, subplaybook, switch, template, tool
from runner.engine.nodes.base import STEP_KINDS, ItemExecutor, RunContext, StepContext, step_kind

__all__ = ["STEP_KINDS", "ItemExecutor", "RunContext", "StepContext", "agent", "approval", "llm", "step_kind",
           "subplaybook", "switch", "template", "tool"]
