"""The step kinds, one module each; this table is the one list of them. Adding a kind: its module (its field's model,
flags, texts and checks: runner/dsl/kinds/base.py StepKind) plus its entry here, its field on the Step model, and
its executor (`@step_kind` under runner/engine/nodes/). tests/test_step_kinds.py checks that all of them agree."""

from __future__ import annotations

from runner.dsl.kinds import agent, approval, llm, playbook, steps, switch, template, tool
from runner.dsl.kinds.base import KindChecker, StepKind, StepLike, Text

KINDS: dict[str, StepKind] = {k.name: k for k in (
    llm.KIND, tool.KIND, agent.KIND, approval.KIND, switch.KIND, playbook.KIND, template.KIND, steps.KIND)}

__all__ = ["KINDS", "KindChecker", "StepKind", "StepLike", "Text"]
