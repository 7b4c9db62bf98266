"""Playbook → LangGraph `StateGraph`. Pure: the node callables come from the executor.

One node per step. Static dependencies become edges (several → a waiting edge that joins them);
switch, goto and approval-with-on_reject become conditional edges; steps without successors lead
to END. A map is one node that runs its items itself (see runner/engine/nodes/map.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypedDict

from runner.dsl.spec import Step
from runner.dsl.topology import END as END_STEP
from runner.dsl.topology import error_target, is_routing
from runner.dsl.validate import Playbook
from runner.errors import CompileError

NodeFunction = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def merge(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """Reducer: parallel steps each add their own key; nothing is clobbered."""
    return {**(left or {}), **(right or {})}


class RunState(TypedDict, total=False):
    inputs: dict[str, Any]
    run: dict[str, Any]
    steps: Annotated[dict[str, Any], merge]
    visits: Annotated[dict[str, int], merge]
    approval: dict[str, Any] | None


def route_targets(step: Step, result: dict[str, Any] | None, onward: list[str]) -> list[str]:
    """Where a routing step sends control, given its result."""
    if step.switch is not None:
        output = (result or {}).get("output") or {}
        return [output.get("goto") or onward[-1]]
    if step.approval is not None and step.approval.on_reject and (result or {}).get("status") == "rejected":
        return [step.approval.on_reject]
    if (target := error_target(step)) is not None and (result or {}).get("status") == "failed":
        return [target]
    if step.goto is not None:
        return [step.goto]
    return onward


def compile_graph(playbook: Playbook, node_factory: Callable[[Step], NodeFunction],
                  checkpointer: Any = None) -> Any:
    from langgraph.graph import END, START, StateGraph

    topo = playbook.topology
    graph: Any = StateGraph(RunState)
    steps = {s.id: s for s in playbook.spec.steps}
    for step in playbook.spec.steps:
        graph.add_node(step.id, node_factory(step))

    def node_or_end(name: str) -> str:
        return END if name == END_STEP else name

    for entry in topo.entries:
        graph.add_edge(START, entry)
    for step_id in topo.order:
        deps = topo.deps[step_id]
        static = [d for d in deps if not is_routing(steps[d])]
        if len(static) == 1:
            graph.add_edge(static[0], step_id)
        elif len(static) > 1:
            graph.add_edge(static, step_id)
    for step_id, step in steps.items():
        if is_routing(step):
            targets = topo.routes[step_id]
            side = {step.approval.on_reject if step.approval else None, error_target(step)}
            onward = [t for t in targets if t not in side] or targets

            def router(state: dict[str, Any], step: Step = step, onward: list[str] = onward) -> list[str]:
                result = (state.get("steps") or {}).get(step.id)
                return [node_or_end(t) for t in route_targets(step, result, onward)]

            path_map = {node_or_end(t): node_or_end(t) for t in targets}
            graph.add_conditional_edges(step_id, router, path_map)
        elif not topo.successors(step_id):
            graph.add_edge(step_id, END)
    try:
        return graph.compile(checkpointer=checkpointer)
    except ValueError as exc:  # LangGraph's own structural checks
        raise CompileError(f"{playbook.path}: cannot build the graph: {exc}") from None


def mermaid(playbook: Playbook) -> str:
    """The compiled graph as a mermaid flowchart (what `playbook graph` prints)."""

    def placeholder(step: Step) -> NodeFunction:
        async def node(state: dict[str, Any]) -> dict[str, Any]:
            return {}

        return node

    text: str = compile_graph(playbook, placeholder).get_graph().draw_mermaid()
    return text
