"""Playbook → LangGraph `StateGraph`. Pure: the node callables come from the executor.

One node per step, gated (runner/engine/gates.py): every edge — `needs`, a switch case, a goto, an on_reject,
an on_error goto — is a link the step it leaves resolves, and a step fires once the links into it are in, so
a join after a switch runs whichever branch ran. A map is one node that runs its items itself (see
runner/engine/nodes/map.py). A branch of plain steps (runner/engine/branches.py) is one node running its own
subgraph, whose edges are LangGraph's own (nothing inside a branch routes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypedDict

from runner.dsl.spec import Step
from runner.dsl.topology import END as END_STEP
from runner.dsl.topology import is_routing
from runner.dsl.validate import Playbook
from runner.engine.branches import Branch, plan_branches
from runner.engine.gates import Gate, NodeFunction, merge_links, plan_units
from runner.engine.nodes.base import skipped_result
from runner.errors import CompileError
from runner.i18n import _


def merge(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """Reducer: parallel steps each add their own key; nothing is clobbered."""
    return {**(left or {}), **(right or {})}


# LangGraph checkpoints only when the graph stops (an approval, the end, an error), not after every step:
# each checkpoint holds the whole state (3.4 MB at step 14 of a 2,000-comment digest), and the journal already
# makes a re-run of any finished step free — a killed run continues from its last stop with nothing repeated.
DURABILITY = "exit"


def latest(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any] | None:
    """Reducer: the decision taken last."""
    return right


class RunState(TypedDict, total=False):
    inputs: dict[str, Any]
    run: dict[str, Any]
    steps: Annotated[dict[str, Any], merge]
    visits: Annotated[dict[str, int], merge]
    approval: Annotated[dict[str, Any] | None, latest]  # two approvals side by side may decide in one superstep
    links: Annotated[dict[str, str], merge_links]  # runner/engine/gates.py: links resolved, not yet taken
    paths: Annotated[dict[str, str], merge]  # step → live (ran) | dead (off the path taken), as last reached


def compile_graph(playbook: Playbook, node_factory: Callable[[Step], NodeFunction],
                  checkpointer: Any = None, *, dataflow: bool = True) -> Any:
    """The run's graph: one gated node per step or branch (runner/engine/gates.py), branches running their own
    subgraph (runner/engine/branches.py) so no step waits for an unrelated one of its superstep. Without
    `dataflow`, the flat graph of steps and their edges, for drawing only."""
    graph = _run_graph(playbook, node_factory) if dataflow else _drawing(playbook)
    try:
        return graph.compile(checkpointer=checkpointer)
    except ValueError as exc:  # LangGraph's own structural checks
        raise CompileError(_("{path}: cannot build the graph: {exc}").format(path=playbook.path, exc=exc)) from None


def run_graph(playbook: Playbook, node_factory: Callable[[Step], NodeFunction], checkpointer: Any) -> Any:
    """The graph a run drives, with its checkpointer: built once per playbook source in a process (the Playbook is
    validated once per source, runner/dsl/validate.py, and keeps it), so a worker, the scheduler, a map whose items
    each run an inline body and an eval suite do not build it again for every run (5 ms for a shipped playbook,
    0.2 s at 400 steps). Its nodes hold no run: they read `current_run()` (runner/engine/nodes/base.py)."""
    graph = playbook.graphs.get("run")
    if graph is None:
        graph = playbook.graphs["run"] = compile_graph(playbook, node_factory)
    return graph.copy(update={"checkpointer": checkpointer, "auto_validate": False})  # checked when built


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
        final = await self.graph.ainvoke({k: v for k, v in state.items() if k not in ("links", "paths")})
        done, visits = final.get("steps") or {}, final.get("visits") or {}
        return {"steps": {s: done[s] for s in self.steps if s in done},
                "visits": {s: visits[s] for s in self.steps if s in visits}}


class OffPath:
    """What a unit off the path taken writes: its steps read as skipped with a null output — unless a step ran
    on an earlier turn of a loop, whose result stays what it was."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps

    def __call__(self, state: dict[str, Any]) -> dict[str, Any]:
        ran = state.get("steps") or {}
        return {"steps": {s.id: skipped_result(s) for s in self.steps if s.id not in ran}}


def _run_graph(playbook: Playbook, node_factory: Callable[[Step], NodeFunction]) -> Any:
    from langgraph.graph import START, StateGraph

    topo = playbook.topology
    steps = {s.id: s for s in playbook.spec.steps}
    branches = {b.node: b for b in branches_of(playbook)}
    grouped = {s for b in branches.values() for s in b.steps}
    groups = [(b.node, b.entry, b.steps) for b in branches.values()]
    groups += [(s, s, (s,)) for s in topo.order if s not in grouped]
    graph: Any = StateGraph(RunState)
    for unit in plan_units(topo, groups):
        branch = branches.get(unit.node)
        if branch is not None:
            inner = _static_graph(playbook, steps, node_factory, set(branch.steps), branch.inner)
            run: NodeFunction = BranchNode(inner.compile(checkpointer=False), branch.steps)
        else:
            run = node_factory(steps[unit.node])
        router = steps[unit.node] if branch is None and is_routing(steps[unit.node]) else None
        gate = Gate(unit, run, OffPath([steps[s] for s in unit.steps]), router, topo)
        graph.add_node(unit.node, gate, destinations=tuple(dict.fromkeys(node for *_from, node, _via in unit.out)))
        if unit.starts:
            graph.add_edge(START, unit.node)
    return graph


def _static_graph(playbook: Playbook, steps: dict[str, Step], node_factory: Callable[[Step], NodeFunction],
                  scope: set[str], branches: tuple[Branch, ...]) -> Any:
    """A branch's subgraph: plain steps only (no routes), so its edges are LangGraph's own; its inner branches
    run as nodes in turn."""
    from langgraph.graph import END, START, StateGraph

    topo = playbook.topology
    graph: Any = StateGraph(RunState)
    unit = {s: s for s in scope}  # step → the node that runs it in this graph
    for branch in branches:
        inner = _static_graph(playbook, steps, node_factory, set(branch.steps), branch.inner)
        graph.add_node(branch.node, BranchNode(inner.compile(checkpointer=False), branch.steps))
        unit.update({s: branch.node for s in branch.steps})
    for step_id in topo.order:
        if unit.get(step_id) == step_id:
            graph.add_node(step_id, node_factory(steps[step_id]))
    waits: dict[str, list[str]] = {}  # node → the nodes it waits for, in file order
    for step_id in topo.order:
        if step_id not in scope:
            continue
        for dep in topo.deps[step_id]:
            if dep in scope and unit[dep] != unit[step_id]:
                waits.setdefault(unit[step_id], [])
                if unit[dep] not in waits[unit[step_id]]:
                    waits[unit[step_id]].append(unit[dep])
    for node, sources in waits.items():
        graph.add_edge(sources[0] if len(sources) == 1 else sources, node)
    entries = [s for s in topo.order if s in scope and not any(d in scope for d in topo.deps[s])]
    for entry in dict.fromkeys(unit[e] for e in entries):
        graph.add_edge(START, entry)
    for step_id in topo.order:
        if step_id in scope and not any(s in scope for s in topo.successors(step_id)):
            graph.add_edge(unit[step_id], END)
    return graph


def _drawing(playbook: Playbook) -> Any:
    """Steps and their edges as one flat graph: `needs` solid, routes dotted (what `playbook graph` draws)."""
    from langgraph.graph import END, START, StateGraph

    async def placeholder(state: dict[str, Any]) -> dict[str, Any]:
        return {}

    topo = playbook.topology
    steps = {s.id: s for s in playbook.spec.steps}
    graph: Any = StateGraph(RunState)
    for step_id in topo.order:
        graph.add_node(step_id, placeholder)
    for step_id in topo.order:
        sources = [d for d in topo.deps[step_id] if not is_routing(steps[d])]
        if sources:
            graph.add_edge(sources[0] if len(sources) == 1 else sources, step_id)
    for entry in topo.entries:
        graph.add_edge(START, entry)

    def node_or_end(name: str) -> str:
        return END if name == END_STEP else name

    for step_id in topo.order:
        if is_routing(steps[step_id]):
            targets = topo.routes[step_id]
            graph.add_conditional_edges(step_id, lambda state: [], {node_or_end(t): node_or_end(t) for t in targets})
        elif not topo.successors(step_id):
            graph.add_edge(step_id, END)
    return graph


def mermaid(playbook: Playbook) -> str:
    """The playbook's steps and edges as a mermaid flowchart (what `playbook graph` prints)."""
    text: str = _drawing(playbook).compile().get_graph().draw_mermaid()
    return text
