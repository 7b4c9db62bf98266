"""Which steps have surely run whenever a given step runs, and when a run ends — so validate can tell a read of a
step that may be off the path taken (a switch branch, an error branch, a step after `goto: end`) from a safe one.
Pure; linear in steps and edges but for the set operations (bitsets).

A step runs when one of the links into it is live (runner/engine/gates.py), so whatever surely ran before *every*
link into it surely ran before it; a link that is always live (a plain `needs`, or a route with one way on) adds
what surely ran before its source. Loops are read on their first turn, the one with least behind it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runner.dsl.topology import Topology


@dataclass(frozen=True)
class Reach:
    before: dict[str, int]  # step → bitset of the steps surely run whenever it runs (itself included)
    at_end: int  # the steps surely run in a run that ends done
    position: dict[str, int]  # step → its bit
    # step → bitset of the steps some path leads from to it (a `needs`, a route, round a loop): the only steps
    # that can have run before it, whatever the timing
    upstream: dict[str, int] = field(default_factory=dict)

    def surely_ran(self, step: str, reader: str | None) -> bool:
        """Whether `step` has run whenever `reader` runs (None: when the run ends done)."""
        bit = 1 << self.position[step]
        return bool((self.at_end if reader is None else self.before[reader]) & bit)

    def may_have_run(self, step: str, reader: str) -> bool:
        """Whether a path leads from `step` to `reader`: without one, `step` has not run when `reader` runs, or
        has only by the timing of steps side by side."""
        return bool(self.upstream.get(reader, 0) >> self.position[step] & 1)


def reach(topo: Topology) -> Reach:
    order = topo.order
    index = {s: i for i, s in enumerate(order)}
    back = topo.back_edges()
    edges = [(a, b) for a, b in dict.fromkeys(topo.edges()) if (a, b) not in back and a in index and b in index]
    into: dict[str, list[str]] = {s: [] for s in order}
    count = dict.fromkeys(order, 0)
    for a, b in edges:
        into[b].append(a)
        count[b] += 1

    def certain(a: str, b: str) -> bool:
        """The link a → b is live whenever a runs on: every way a route may go (but round a loop) takes it."""
        targets = topo.routes.get(a)
        if targets is None or b not in targets:
            return True
        ways = [way for way in topo.choices.get(a, []) if not all((a, t) in back for t in way)]
        return all(b in way for way in ways)

    always: dict[str, bool] = {}
    before: dict[str, int] = {}
    entries = set(topo.entries)
    ready = [s for s in order if count[s] == 0]
    outs: dict[str, list[str]] = {s: [] for s in order}
    for a, b in edges:
        outs[a].append(b)
    while ready:
        step = ready.pop()
        sources = into[step]
        sure = [a for a in sources if always[a] and certain(a, step)]
        always[step] = step in entries or bool(sure)
        bits = 1 << index[step]
        for a in sure:
            bits |= before[a]
        if sources and step not in entries:
            common = before[sources[0]]
            for a in sources[1:]:
                common &= before[a]
            bits |= common
        before[step] = bits
        for b in outs[step]:
            count[b] -= 1
            if count[b] == 0:
                ready.append(b)
    at_end = 0
    for step in order:
        before.setdefault(step, 1 << index[step])  # only in a cycle of needs, which validate refuses anyway
        if always.get(step):
            at_end |= before[step]
    return Reach(before, at_end, index, _upstream(topo, index))


def _upstream(topo: Topology, index: dict[str, int]) -> dict[str, int]:
    """Per step, the steps some path leads from (loops included): passes in file order until nothing changes, one
    pass more than the loops nest."""
    edges = [(a, b) for a, b in dict.fromkeys(topo.edges()) if a in index and b in index]
    upstream = dict.fromkeys(index, 0)
    changed = True
    while changed:
        changed = False
        for a, b in edges:
            grown = upstream[b] | upstream[a] | 1 << index[a]
            if grown != upstream[b]:
                upstream[b], changed = grown, True
    return upstream

