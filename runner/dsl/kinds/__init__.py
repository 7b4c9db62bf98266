"""The step kinds, one module each; this table is the one list of them. Adding a built-in kind: its module (its
field's model, flags, texts and checks: runner/dsl/kinds/base.py StepKind) plus its entry here, its field on the
Step model and its executor (`@step_kind` under runner/engine/nodes/). A plugin kind is one module whose StepKind
carries its executor, registered with `register_kind` or named in the entry-point group `playbook.step_kinds`.
tests/test_step_kinds.py checks that every phase agrees."""

from __future__ import annotations

from importlib.metadata import entry_points

from runner.dsl.kinds import agent, approval, llm, playbook, steps, switch, template, tool
from runner.dsl.kinds.base import KindChecker, StepKind, StepLike, Text
from runner.i18n import _

ENTRY_POINT_GROUP = "playbook.step_kinds"
BUILT_IN = (llm.KIND, tool.KIND, agent.KIND, approval.KIND, switch.KIND, playbook.KIND, template.KIND, steps.KIND)
KINDS: dict[str, StepKind] = {k.name: k for k in BUILT_IN}
RESERVED: set[str] = set()  # the Step model's own keys (`map`, `with` …), which no plugin kind may take
_plugins_loaded = False


class KindError(ValueError):
    """A plugin kind that cannot be added: its name is taken, or it has no executor."""


def register_kind(kind: StepKind) -> None:
    """Add a step kind from outside the runner: a plugin's, or one a test defines. Its key (`kind.name`) is read by
    the Step model; its record says what it allows; `kind.executor` runs it."""
    if kind.name in KINDS or kind.name in RESERVED:
        raise KindError(_("step kind '{name}' cannot be added: a step already has a key of that name").format(
                            name=kind.name))
    if kind.executor is None:
        raise KindError(_("step kind '{name}' has no executor").format(name=kind.name))
    KINDS[kind.name] = kind


def unregister_kind(name: str) -> None:
    if name in KINDS and KINDS[name] not in BUILT_IN:
        del KINDS[name]


def plugin_kinds() -> dict[str, StepKind]:
    """The kinds added by register_kind or an entry point (loaded on first use)."""
    load_plugin_kinds()
    return {name: kind for name, kind in KINDS.items() if kind not in BUILT_IN}


def load_plugin_kinds() -> None:
    """The kinds installed packages name in the `playbook.step_kinds` entry-point group, once per process."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for point in entry_points(group=ENTRY_POINT_GROUP):
        kind = point.load()
        if not isinstance(kind, StepKind):
            raise KindError(_("entry point '{name}' in {group} is not a StepKind").format(
                                name=point.name, group=ENTRY_POINT_GROUP))
        register_kind(kind)


__all__ = ["BUILT_IN", "KINDS", "KindChecker", "KindError", "StepKind", "StepLike", "Text", "load_plugin_kinds",
           "plugin_kinds", "register_kind", "unregister_kind"]
