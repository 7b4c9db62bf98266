"""Which groups of steps run as their own LangGraph subgraph, so a step starts as soon as its own
dependencies finish. Pure: takes the topology, returns a plan.

LangGraph runs in supersteps: every node triggered together must finish before any node of the next
superstep starts. A branch of three quick steps beside one slow step would therefore take as long as
the slow step for each of its own steps. A *branch* here is a single-entry, single-exit group of steps:
only its entry has dependencies outside it, only its exit has successors outside it. Running it as one
node that invokes its own subgraph delays nothing outside (nothing outside can start before its entry's
dependencies are done, or needs anything of it but its exit) and frees its steps from the outer
superstep. Branches nest, so any series-parallel shape runs as pure dataflow. What stays in the outer
graph: steps that route (switch, goto, on_reject, on_error goto) and approvals; a step reached by a
route may only be a branch's entry (the route then enters the branch there).
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.dsl.topology import END, Topology


@dataclass(frozen=True)
class Branch:
    entry: str
    exit: str
    steps: tuple[str, ...]  # in file order
    inner: tuple[Branch, ...]

    @property
    def node(self) -> str:
        """Its node name in the outer graph (step ids cannot contain '…')."""
        return f"{self.entry}…{self.exit}"


def _closure(start: str, nexts: dict[str, set[str]]) -> set[str]:
    seen = {start}
    frontier = [start]
    while frontier:
        for nxt in nexts[frontier.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    return seen


def _reduced(deps: dict[str, set[str]], routes: dict[str, list[str]]) -> dict[str, set[str]]:
    """Without the dependencies another dependency already implies (`needs: [load, scorecard]` when
    scorecard needs load): they change no start time, and would hide a branch's single exit. Implied only along
    links a route cannot leave dead (runner/engine/gates.py): a step after an error branch's source may be off
    the path while the step before that source ran, so that need is not implied."""
    certain = {s: {d for d in ds if s not in routes.get(d, ())} for s, ds in deps.items()}
    upstream = {s: _closure(s, certain) - {s} for s in deps}
    return {s: {d for d in ds if not any(d in upstream[other] for other in ds if other != d)}
            for s, ds in deps.items()}


class _Shape:
    def __init__(self, topo: Topology, plain: set[str]) -> None:
        self.order = topo.order
        self.deps = _reduced({s: set(topo.deps[s]) for s in topo.order}, topo.routes)
        self.succ: dict[str, set[str]] = {s: set() for s in topo.order}
        for s in topo.order:
            for d in self.deps[s]:
                self.succ[d].add(s)
        every: dict[str, set[str]] = {s: set(self.succ[s]) for s in topo.order}
        for source, targets in topo.routes.items():
            every[source] |= {t for t in targets if t != END}
        backward: dict[str, set[str]] = {s: set() for s in topo.order}
        for a, outs in every.items():
            for b in outs:
                backward[b].add(a)
        # reachability over static edges and routes alike: a step reached only through a route is not parallel
        self.after = {s: _closure(s, every) for s in topo.order}
        self.before = {s: _closure(s, backward) for s in topo.order}
        self.static_after = {s: _closure(s, self.succ) for s in topo.order}
        self.route_targets = {t for targets in topo.routes.values() for t in targets}
        self.plain = plain

    def region(self, entry: str, exit_: str) -> set[str] | None:
        """The single-entry, single-exit group from `entry` to `exit_`, or None if there is none."""
        if exit_ not in self.static_after[entry] or entry == exit_:
            return None
        group = {s for s in self.static_after[entry] if exit_ in self.static_after[s]}
        for s in group:
            if s not in self.plain or (s != entry and (s in self.route_targets or not self.deps[s] <= group)):
                return None
            if s != exit_ and not self.succ[s] <= group:
                return None
        return group

    def parallel_to(self, group: set[str], entry: str, exit_: str, scope: set[str]) -> bool:
        """Whether some step of `scope` may run while `group` does."""
        return any(s not in group and s not in self.before[entry] and s not in self.after[exit_]
                   for s in scope)

    def plan(self, scope: set[str]) -> tuple[Branch, ...]:
        candidates: list[tuple[set[str], str, str]] = []
        for entry in scope:
            for exit_ in scope:
                group = self.region(entry, exit_)
                if group and group < scope and self.parallel_to(group, entry, exit_, scope):
                    candidates.append((group, entry, exit_))
        candidates.sort(key=lambda c: (-len(c[0]), self.order.index(c[1])))
        chosen: list[tuple[set[str], str, str]] = []
        for group, entry, exit_ in candidates:
            if all(group.isdisjoint(other) for other, _, _ in chosen):
                chosen.append((group, entry, exit_))
        return tuple(Branch(entry, exit_, tuple(s for s in self.order if s in group), self.plan(group))
                     for group, entry, exit_ in sorted(chosen, key=lambda c: self.order.index(c[1])))


def plan_branches(topo: Topology, plain: set[str]) -> tuple[Branch, ...]:
    """The outermost branches of the playbook (each holds its own inner ones). `plain` are the steps that
    may run inside a branch."""
    return _Shape(topo, plain).plan(set(topo.order))
