"""Which steps a finished step hands on to, and whether a step runs or is skipped as off the path taken.

Every edge of the graph — a step's `needs` (or the step before it), a switch case, a `goto`, an `on_reject`,
an `on_error: {goto}` — is a *link* that the step it leaves resolves when it finishes: live when control goes
that way, dead when it does not (a case not chosen; every link out of a step that was itself off the path).
A step fires once every link into it is resolved: it runs if one of them is live, and is skipped as off the
path taken if all are dead, passing dead links on. So a join after a switch runs once, whichever branch ran,
and a step is skipped only when every path to it was. A link that closes a loop (a goto back, an on_reject)
restarts its target by itself; a route that goes round a loop leaves its other links open, since the loop
may still come back and choose them; and a link into a loop from outside it, once resolved, holds for every
turn (the step outside does not run again).

LangGraph's own waiting edges cannot do this (they wait for every source, and a branch not taken never
comes): links are state, every source of a step triggers it, and the step fires only when they are all in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from runner.dsl.spec import Step
from runner.dsl.topology import END, Topology, error_target

LIVE, DEAD, LOOP = "live", "dead", "loop"
NodeFunction = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def link(source: str, target: str) -> str:
    return f"{source}>{target}"


def merge_links(left: dict[str, str] | None, right: dict[str, str | None] | None) -> dict[str, str]:
    """Reducer of the links in the run's state: a step's write resolves links (a value) or consumes the links
    into it (None), so the state holds only links still to be taken."""
    merged = dict(left or {})
    for key, value in (right or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


@dataclass(frozen=True)
class Unit:
    """One node of the run's graph: a step, or a branch of plain steps run as one subgraph."""

    node: str
    entry: str  # the step links arrive at
    steps: tuple[str, ...]
    starts: bool  # an entry of the playbook: reached from the start, so always on the path
    forward_in: tuple[str, ...]
    back_in: tuple[str, ...]
    kept: tuple[str, ...]  # links from outside the loop the unit is in: resolved once, they hold for every turn
    out: tuple[tuple[str, str, str, bool], ...]  # (from step, to step, to node, closes a loop)


def plan_units(topo: Topology, groups: list[tuple[str, str, tuple[str, ...]]]) -> list[Unit]:
    """Links into and out of each group (node, entry step, steps). An edge into a step of a branch other
    than its entry is implied by the entry's own (runner/engine/branches.py) and carries no link."""
    unit_of = {s: node for node, _, steps in groups for s in steps}
    entry_of = {node: entry for node, entry, _ in groups}
    edges = list(dict.fromkeys(topo.edges()))
    back = topo.back_edges()
    entries = set(topo.entries)
    loop_of = {s: i for i, loop in enumerate(topo.cycles()) for s in loop}
    sources: dict[str, list[str]] = {}
    leaving: dict[str, list[tuple[str, str]]] = {}
    for a, b in edges:
        sources.setdefault(b, []).append(a)
        leaving.setdefault(unit_of[a], []).append((a, b))
    units = []
    for node, entry, steps in groups:
        into = [(a, entry) for a in sources.get(entry, []) if unit_of[a] != node or a == entry]
        out = [(a, b, unit_of[b], (a, b) in back) for a, b in leaving.get(node, [])
               if b != END and entry_of[unit_of[b]] == b and (unit_of[b] != node or a == b)]
        loop = loop_of.get(entry)
        units.append(Unit(node=node, entry=entry, steps=steps, starts=entry in entries,
                          forward_in=tuple(link(a, b) for a, b in into if (a, b) not in back),
                          back_in=tuple(link(a, b) for a, b in into if (a, b) in back), out=tuple(out),
                          kept=tuple(link(a, b) for a, b in into if loop is not None and loop_of.get(a) != loop)))
    return units


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


def onward_targets(step: Step, topo: Topology) -> list[str]:
    """A routing step's usual way on (its targets but for the reject and error branches)."""
    targets = topo.routes[step.id]
    side = {step.approval.on_reject if step.approval else None, error_target(step)}
    return [t for t in targets if t not in side] or targets


class Gate:
    """A unit as a graph node: fires when its links are in, runs it (or skips it as off the path), resolves
    the links out of it and triggers the units they lead to."""

    def __init__(self, unit: Unit, run: NodeFunction, skip: Callable[[dict[str, Any]], dict[str, Any]],
                 router: Step | None, topo: Topology) -> None:
        self.unit = unit
        self.run = run
        self.skip = skip
        self.router = router
        self.routes = set(topo.routes.get(router.id, [])) if router is not None else set()
        self.onward = onward_targets(router, topo) if router is not None else []

    def fires(self, links: dict[str, str]) -> tuple[bool, list[str]] | None:
        """(on the path, the links it consumes), or None while a link into it is still open."""
        unit = self.unit
        looped = [name for name in unit.back_in if links.get(name) == LOOP]
        if looped:
            return True, looped
        if any(links.get(name) not in (LIVE, DEAD) for name in unit.forward_in):
            return None
        live = unit.starts or any(links[name] == LIVE for name in unit.forward_in)
        return live, [name for name in unit.forward_in if name not in unit.kept]

    def chosen(self, update: dict[str, Any]) -> set[str] | None:
        """The route a routing step took (None: every link out of the unit is taken)."""
        if self.router is None:
            return None
        result = (update.get("steps") or {}).get(self.router.id)
        return set(route_targets(self.router, result, self.onward))

    async def __call__(self, state: dict[str, Any]) -> Any:
        from langgraph.types import Command

        fired = self.fires(state.get("links") or {})
        if fired is None:
            return {}
        live, consumed = fired
        update = await self.run(state) if live else self.skip(state)
        chosen = self.chosen(update) if live else set()
        # going round a loop decides nothing about the other ways out: the loop may come back and take them
        looping = any(closes and target in (chosen or ()) for _, target, _, closes in self.unit.out)
        links: dict[str, str | None] = dict.fromkeys(consumed)
        goto: list[str] = []
        for source, target, node, closes in self.unit.out:
            taken = live and (chosen is None or target in chosen or target not in self.routes)
            if closes and taken:
                links[link(source, target)] = LOOP
            elif not closes and not looping:
                links[link(source, target)] = LIVE if taken else DEAD
            else:  # a loop not taken; or, going round one, every way on (they wait for the loop to come back)
                continue
            goto.append(node)
        update["links"] = links
        update["paths"] = dict.fromkeys(self.unit.steps, LIVE if live else DEAD)
        return Command(update=update, goto=list(dict.fromkeys(goto)))


def never_reached(order: list[str], paths: dict[str, str], results: dict[str, Any]) -> list[str]:
    """Steps that neither ran nor were skipped as off the path: a run that ends with one is not done."""
    return [s for s in order if s not in paths and s not in results]
