"""Playbook → LangGraph `StateGraph`. Pure: the node callables come from the executor.

One node per step. Static dependencies become edges (several → a waiting edge that joins them);
switch, goto and approval-with-on_reject become conditional edges; steps without successors lead
to END. A map is one node that runs its items itself (see runner/engine/nodes/map.py). A branch
(runner/engine/branches.py) is one node running its own subgraph, built the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypedDict

from runner.dsl.spec import Step
from runner.dsl.topology import END as END_STEP
from runner.dsl.topology import error_target, is_routing
from runner.dsl.validate import Playbook
from runner.engine.branches import Branch, plan_branches
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
                  checkpointer: Any = None, *, dataflow: bool = True) -> Any:
    """The run's graph. With `dataflow`, branches (runner/engine/branches.py) become nodes that run their own
    subgraph, so no step waits for an unrelated step of its superstep; without, one flat graph (for drawing)."""
    steps = {s.id: s for s in playbook.spec.steps}
    branches = branches_of(playbook) if dataflow else ()
    graph = _graph(playbook, steps, node_factory, set(steps), branches, outer=True)
    try:
        return graph.compile(checkpointer=checkpointer)
    except ValueError as exc:  # LangGraph's own structural checks
        raise CompileError(f"{playbook.path}: cannot build the graph: {exc}") from None


def branches_of(playbook: Playbook) -> tuple[Branch, ...]:
    """The playbook's outermost branches. Routing steps and approvals stay in the outer graph: a route
    must reach its target in the graph it is drawn in, and an approval pauses the whole run."""
    plain = {s.id for s in playbook.spec.steps if not is_routing(s) and s.approval is None}
    return plan_branches(playbook.topology, plain)


class BranchNode:
    """A branch as one node of the graph around it: runs its subgraph, hands back only its own steps
    (the rest of the state it was given may be older than what parallel nodes write meanwhile)."""

    def __init__(self, graph: Any, steps: tuple[str, ...]) -> None:
        self.graph = graph
        self.steps = steps

    async def __call__(self, state: dict[str, Any]) -> dict[str, Any]:
        final = await self.graph.ainvoke(state)
        done, visits = final.get("steps") or {}, final.get("visits") or {}
        return {"steps": {s: done[s] for s in self.steps if s in done},
                "visits": {s: visits[s] for s in self.steps if s in visits}}


def _graph(playbook: Playbook, steps: dict[str, Step], node_factory: Callable[[Step], NodeFunction],
           scope: set[str], branches: tuple[Branch, ...], *, outer: bool) -> Any:
    from langgraph.graph import END, START, StateGraph

    topo = playbook.topology
    graph: Any = StateGraph(RunState)
    unit = {s: s for s in scope}  # step → the node that runs it in this graph
    for branch in branches:
        inner = _graph(playbook, steps, node_factory, set(branch.steps), branch.inner, outer=False)
        graph.add_node(branch.node, BranchNode(inner.compile(checkpointer=False), branch.steps))
        unit.update({s: branch.node for s in branch.steps})
    for step_id in topo.order:
        if unit.get(step_id) == step_id:
            graph.add_node(step_id, node_factory(steps[step_id]))

    def node_or_end(name: str) -> str:
        return END if name == END_STEP else unit[name]

    waits: dict[str, list[str]] = {}  # node → the nodes it waits for, in file order
    for step_id in topo.order:
        if step_id not in scope:
            continue
        for dep in topo.deps[step_id]:
            if dep in scope and unit[dep] != unit[step_id] and not is_routing(steps[dep]):
                waits.setdefault(unit[step_id], [])
                if unit[dep] not in waits[unit[step_id]]:
                    waits[unit[step_id]].append(unit[dep])
    for node, sources in waits.items():
        graph.add_edge(sources[0] if len(sources) == 1 else sources, node)
    entries = topo.entries if outer else [s for s in topo.order if s in scope
                                          and not any(d in scope for d in topo.deps[s])]
    for entry in dict.fromkeys(unit[e] for e in entries):
        graph.add_edge(START, entry)
    for step_id in topo.order:
        if step_id not in scope:
            continue
        step = steps[step_id]
        if is_routing(step):
            targets = topo.routes[step_id]
            side = {step.approval.on_reject if step.approval else None, error_target(step)}
            onward = [t for t in targets if t not in side] or targets

            def router(state: dict[str, Any], step: Step = step, onward: list[str] = onward) -> list[str]:
                result = (state.get("steps") or {}).get(step.id)
                return [node_or_end(t) for t in route_targets(step, result, onward)]

            path_map = {node_or_end(t): node_or_end(t) for t in targets}
            graph.add_conditional_edges(step_id, router, path_map)
        elif not any(s in scope for s in topo.successors(step_id)):
            graph.add_edge(unit[step_id], END)
    return graph


def mermaid(playbook: Playbook) -> str:
    """The compiled graph as a mermaid flowchart (what `playbook graph` prints)."""

    def placeholder(step: Step) -> NodeFunction:
        async def node(state: dict[str, Any]) -> dict[str, Any]:
            return {}

        return node

    text: str = compile_graph(playbook, placeholder, dataflow=False).get_graph().draw_mermaid()
    return text
