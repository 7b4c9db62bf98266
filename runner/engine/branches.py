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


def _reach(order: list[str], nexts: dict[str, set[str]], bit: dict[str, int]) -> dict[str, int]:
    """Every step's closure over `nexts` (itself included), as a bitmask of step positions. Passes over the steps
    until nothing changes: one pass when `order` runs against the edges, a few more for each loop (routes)."""
    reach = {s: bit[s] for s in order}
    changed = True
    while changed:
        changed = False
        for s in reversed(order):
            grown = reach[s]
            for nxt in nexts[s]:
                grown |= reach[nxt]
            if grown != reach[s]:
                reach[s], changed = grown, True
    return reach


def _reduced(order: list[str], deps: dict[str, set[str]], routes: dict[str, list[str]],
             bit: dict[str, int]) -> dict[str, set[str]]:
    """Without the dependencies another dependency already implies (`needs: [load, scorecard]` when
    scorecard needs load): they change no start time, and would hide a branch's single exit. Implied only along
    links a route cannot leave dead (runner/engine/gates.py): a step after an error branch's source may be off
    the path while the step before that source ran, so that need is not implied."""
    certain = {s: {d for d in ds if s not in routes.get(d, ())} for s, ds in deps.items()}
    upstream = {s: reach & ~bit[s] for s, reach in _reach(list(reversed(order)), certain, bit).items()}
    return {s: {d for d in ds if not any(bit[d] & upstream[other] for other in ds if other != d)}
            for s, ds in deps.items()}


def _immediate(order: list[str], preds: dict[str, set[str]]) -> dict[str, str | None]:
    """Immediate dominators over a DAG given in topological `order` (None: only the virtual root above it). For
    post-dominators, pass the reversed order and the successors."""
    idom: dict[str, str | None] = {}
    depth: dict[str | None, int] = {None: 0}
    for s in order:
        found: str | None = None
        for i, p in enumerate(preds[s]):
            if i == 0:
                found = p
                continue
            a: str | None = found  # up the tree to their nearest common dominator
            b: str | None = p
            while a != b:
                if depth[a] >= depth[b]:
                    a = idom[a] if a is not None else None
                else:
                    b = idom[b] if b is not None else None
            found = a
        idom[s] = found
        depth[s] = depth[found] + 1
    return idom


class _Shape:
    def __init__(self, topo: Topology, plain: set[str]) -> None:
        self.order = topo.order
        self.position = {s: i for i, s in enumerate(topo.order)}
        self.bit = {s: 1 << i for i, s in enumerate(topo.order)}
        self.deps = _reduced(topo.order, {s: set(topo.deps[s]) for s in topo.order}, topo.routes, self.bit)
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
        self.after = _reach(topo.order, every, self.bit)
        self.before = _reach(list(reversed(topo.order)), backward, self.bit)
        self.static_after = _reach(topo.order, self.succ, self.bit)
        self.static_before = _reach(list(reversed(topo.order)), self.deps, self.bit)
        self.route_targets = sum(self.bit[t] for t in {t for ts in topo.routes.values() for t in ts} if t in self.bit)
        self.plain = sum(self.bit[s] for s in plain if s in self.bit)
        # a single-entry, single-exit group is exactly the steps between an entry that dominates its exit and an
        # exit that post-dominates its entry (over the static links): the only pairs worth looking at
        static_order = self._static_order()
        self.idom = _immediate(static_order, self.deps)
        self.ipdom = _immediate(list(reversed(static_order)), self.succ)
        self.dominated = self._dominated(static_order)

    def _static_order(self) -> list[str]:
        """The steps in an order the static links respect (file order where they allow)."""
        waiting = {s: len(self.deps[s]) for s in self.order}
        ready = [s for s in self.order if not waiting[s]]
        done: list[str] = []
        while ready:
            ready.sort(key=self.position.__getitem__, reverse=True)
            s = ready.pop()
            done.append(s)
            for nxt in self.succ[s]:
                waiting[nxt] -= 1
                if not waiting[nxt]:
                    ready.append(nxt)
        return done

    def _dominated(self, static_order: list[str]) -> dict[str, int]:
        """Each step's dominator-tree subtree (the steps it dominates, itself included), as a bitmask."""
        below = dict(self.bit)
        for s in reversed(static_order):
            parent = self.idom[s]
            if parent is not None:
                below[parent] |= below[s]
        return below

    def region(self, entry: str, exit_: str) -> int | None:
        """The single-entry, single-exit group from `entry` (dominating) to `exit_` (post-dominating), or None
        when a step of it may not run inside a branch (it routes, waits for approval, or a route reaches it)."""
        group = self.static_after[entry] & self.static_before[exit_]
        if group & ~self.plain or group & ~self.bit[entry] & self.route_targets:
            return None
        return group

    def plan(self, scope: int) -> tuple[Branch, ...]:
        candidates: list[tuple[int, str, str]] = []
        for entry in self.order:
            # a group that something may run beside has an entry that something may run beside: outside the group
            # are only steps before its entry, after its exit, or beside its entry (nothing leaves it but its exit)
            if not scope & self.bit[entry] or not scope & ~(self.before[entry] | self.after[entry]):
                continue
            exit_ = self.ipdom[entry]
            while exit_ is not None and self.dominated[entry] & self.bit[exit_]:  # past it, nothing is dominated
                group = self.region(entry, exit_)
                if group is not None and group & scope == group != scope and \
                        scope & ~group & ~self.before[entry] & ~self.after[exit_]:
                    candidates.append((group, entry, exit_))
                exit_ = self.ipdom[exit_]
        candidates.sort(key=lambda c: (-c[0].bit_count(), self.position[c[1]]))
        chosen: list[tuple[int, str, str]] = []
        taken = 0
        for group, entry, exit_ in candidates:
            if not group & taken:
                chosen.append((group, entry, exit_))
                taken |= group
        return tuple(Branch(entry, exit_, tuple(s for s in self.order if group & self.bit[s]), self.plan(group))
                     for group, entry, exit_ in sorted(chosen, key=lambda c: self.position[c[1]]))


def plan_branches(topo: Topology, plain: set[str]) -> tuple[Branch, ...]:
    """The outermost branches of the playbook (each holds its own inner ones). `plain` are the steps that
    may run inside a branch."""
    shape = _Shape(topo, plain)
    return shape.plan((1 << len(topo.order)) - 1)
