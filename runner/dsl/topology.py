"""The shape of a playbook's graph: dependencies, routes, entries. Pure data, used by validate and compile.

A step depends on the step before it unless it declares `needs`. A step that routes — a `switch`, a
step with `goto`, an approval with `on_reject` — hands control on explicitly, so the step after it
in the file is reached only through a route (for a switch, its `default` falls through to it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runner.dsl.spec import PlaybookSpec, Step

END = "end"


@dataclass
class Topology:
    order: list[str]
    deps: dict[str, list[str]] = field(default_factory=dict)
    routes: dict[str, list[str]] = field(default_factory=dict)  # routing step → every possible target
    loop_routes: dict[str, list[str]] = field(default_factory=dict)  # goto/switch targets only
    entries: list[str] = field(default_factory=list)
    # routing step → the ways it may go, each the targets it takes together (an approval's usual way on is all its
    # successors; a switch case is one step)
    choices: dict[str, list[list[str]]] = field(default_factory=dict)
    _back: set[tuple[str, str]] | None = field(default=None, repr=False)

    def successors(self, step_id: str) -> list[str]:
        """Steps whose static dependencies include `step_id`."""
        return [s for s in self.order if step_id in self.deps[s]]

    def edges(self) -> list[tuple[str, str]]:
        pairs = [(d, s) for s in self.order for d in self.deps[s]]
        pairs += [(s, t) for s, targets in self.routes.items() for t in targets if t != END]
        return pairs

    def back_edges(self) -> set[tuple[str, str]]:
        """The routes that close a loop (a goto or switch back, an on_reject, an error branch back): a route whose
        target already leads to its source over the `needs` edges and the routes taken in before it (file order).
        A `needs` edge never closes a loop."""
        if self._back is not None:
            return self._back
        nexts: dict[str, list[str]] = {s: [] for s in self.order}
        for step in self.order:
            for dep in self.deps[step]:
                if dep in nexts:
                    nexts[dep].append(step)
        back: set[tuple[str, str]] = set()
        for source in self.order:
            for target in self.routes.get(source, []):
                if target not in nexts or target in nexts[source]:
                    continue
                if leads_to(target, source, nexts):
                    back.add((source, target))
                else:
                    nexts[source].append(target)
        self._back = back
        return back

    def reachable(self) -> set[str]:
        seen: set[str] = set()
        frontier = list(self.entries)
        nexts: dict[str, set[str]] = {s: set() for s in self.order}
        for a, b in self.edges():
            if a in nexts:
                nexts[a].add(b)
        while frontier:
            node = frontier.pop()
            if node in seen or node not in nexts:
                continue
            seen.add(node)
            frontier.extend(nexts[node])
        return seen

    def cycles(self) -> list[list[str]]:
        """Strongly connected components that form a loop (Tarjan's, without recursion: a 1,000-step chain went
        past Python's recursion limit)."""
        nexts: dict[str, list[str]] = {s: [] for s in self.order}
        for a, b in self.edges():
            if a in nexts and b in nexts:
                nexts[a].append(b)
        position = {s: i for i, s in enumerate(self.order)}
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        found: list[list[str]] = []
        for root in self.order:
            if root in index:
                continue
            index[root] = low[root] = len(index)
            stack.append(root)
            on_stack.add(root)
            work = [(root, iter(nexts[root]))]  # the path being explored, each node with its next links to try
            while work:
                node, links = work[-1]
                nxt = next(links, None)
                if nxt is not None:
                    if nxt not in index:
                        index[nxt] = low[nxt] = len(index)
                        stack.append(nxt)
                        on_stack.add(nxt)
                        work.append((nxt, iter(nexts[nxt])))
                    elif nxt in on_stack:
                        low[node] = min(low[node], index[nxt])
                    continue
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component: list[str] = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        component.append(top)
                        if top == node:
                            break
                    if len(component) > 1 or node in nexts[node]:
                        found.append(sorted(component, key=position.__getitem__))
        return found


def leads_to(start: str, goal: str, nexts: dict[str, list[str]]) -> bool:
    """Whether `goal` is `start` or follows it over `nexts` (step → the steps after it)."""
    seen = {start}
    frontier = [start]
    while frontier:
        node = frontier.pop()
        if node == goal:
            return True
        for nxt in nexts[node]:
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    return False


def is_routing(step: Step) -> bool:
    return (step.switch is not None or step.goto is not None or error_target(step) is not None
            or (step.approval is not None and step.approval.on_reject is not None))


def error_target(step: Step) -> str | None:
    """The error branch of `on_error: {goto: step}`, if any."""
    policy, target = step.error_policy
    return str(target) if policy == "goto" else None


def _hands_off(step: Step) -> bool:
    """A step after which the next one in the file is not implied."""
    return step.switch is not None or step.goto is not None


def build_topology(spec: PlaybookSpec) -> Topology:
    steps = spec.steps
    topo = Topology(order=[s.id for s in steps])
    for i, step in enumerate(steps):
        if step.needs is not None:
            topo.deps[step.id] = list(step.needs)
        elif i == 0 or _hands_off(steps[i - 1]):
            topo.deps[step.id] = []
        else:
            topo.deps[step.id] = [steps[i - 1].id]
        explicit_start = step.needs == [] or i == 0
        if not topo.deps[step.id] and (explicit_start or not _hands_off(steps[i - 1])):
            topo.entries.append(step.id)
    for i, step in enumerate(steps):
        following = steps[i + 1].id if i + 1 < len(steps) else END
        if step.switch is not None:
            targets = [c.goto for c in step.switch.cases] + [step.switch.default or following]
            topo.routes[step.id] = list(dict.fromkeys(targets))
            topo.loop_routes[step.id] = topo.routes[step.id]
        elif step.goto is not None:
            topo.routes[step.id] = [step.goto]
            topo.loop_routes[step.id] = [step.goto]
        if (target := error_target(step)) is not None:  # an error branch may lead back: a loop to guard
            topo.loop_routes[step.id] = [*topo.loop_routes.get(step.id, []), target]
        side = [t for t in (step.approval.on_reject if step.approval else None, error_target(step)) if t]
        if side and step.switch is None:  # a second way out beside the usual one
            onward = [step.goto] if step.goto else (topo.successors(step.id) or [END])
            topo.routes[step.id] = list(dict.fromkeys([*onward, *side]))
            topo.choices[step.id] = [onward, *([t] for t in side)]
        elif step.id in topo.routes:
            topo.choices[step.id] = [[t] for t in topo.routes[step.id]]
    return topo
