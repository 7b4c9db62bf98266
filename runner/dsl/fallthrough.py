"""Warnings for a step that a route may go to and that, by its default `needs` (the step before it in the
file), also follows another way the same route may go: it then runs after that way as well. Laid out one after
another, a switch's branches or a step with its error branch below it read as alternatives, but the second runs
after the first whichever way the route went. Pure: spec and topology in, (location, message) out."""

from __future__ import annotations

from typing import Any

from runner.dsl.spec import PlaybookSpec
from runner.dsl.topology import END, Topology, leads_to
from runner.i18n import _


def joined_ways(spec: PlaybookSpec, topo: Topology) -> list[tuple[tuple[Any, ...], str]]:
    index = {step.id: i for i, step in enumerate(spec.steps)}
    nexts: dict[str, list[str]] = {s: [] for s in topo.order}
    for step_id in topo.order:
        for dep in topo.deps[step_id]:
            if dep in nexts:
                nexts[dep].append(step_id)
    found: list[tuple[tuple[Any, ...], str]] = []
    warned: set[str] = set()
    for router, choices in topo.choices.items():
        ways = list(dict.fromkeys(t for choice in choices for t in choice if t != END and t in index))
        for way in ways:
            deps = topo.deps[way]
            if way in warned or spec.steps[index[way]].needs is not None or len(deps) != 1 or deps[0] == router:
                continue
            before = deps[0]
            other = next((o for o in ways if o != way and leads_to(o, before, nexts)), None)
            if other is None:
                continue
            warned.add(way)
            found.append((("steps", index[way], "id"), _(
                "step '{step}' is a way '{router}' may go, and by default it also follows '{before}' (the step "
                "before it), which runs when '{router}' goes to '{other}': so '{step}' runs then too. If the two "
                "ways exclude each other, give '{step}' `needs: [{router}]`; if it should follow '{before}', write "
                "`needs: [{before}]`").format(step=way, router=router, before=before, other=other)))
    return found

