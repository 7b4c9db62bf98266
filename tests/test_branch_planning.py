"""Branch planning (runner/engine/branches.py) found through dominators and bitmasks gives exactly the plan of its
definition — every pair of steps tried as a single-entry, single-exit group, the largest groups that something may
run beside chosen first — on thousands of random shapes, routes and loops included. (Its speed by size:
benchmarks/bench_compile.py.)"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from runner.dsl.topology import END, Topology
from runner.dsl.validate import load_and_validate
from runner.engine.branches import Branch, plan_branches
from runner.engine.compile import branches_of
from tests.conftest import cli


def _closure(start: str, nexts: dict[str, set[str]]) -> set[str]:
    seen, frontier = {start}, [start]
    while frontier:
        for nxt in nexts[frontier.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    return seen


@dataclass
class Definition:
    """The plan by its definition, pair by pair (cubic in the steps: the reference, not the engine's way)."""

    topo: Topology
    plain: set[str]

    def __post_init__(self) -> None:
        order, routes = self.topo.order, self.topo.routes
        deps = {s: set(self.topo.deps[s]) for s in order}
        certain = {s: {d for d in ds if s not in routes.get(d, ())} for s, ds in deps.items()}
        upstream = {s: _closure(s, certain) - {s} for s in order}
        self.deps = {s: {d for d in ds if not any(d in upstream[o] for o in ds if o != d)} for s, ds in deps.items()}
        self.succ: dict[str, set[str]] = {s: {t for t in order if s in self.deps[t]} for s in order}
        every = {s: self.succ[s] | {t for t in routes.get(s, []) if t != END} for s in order}
        backward = {s: {a for a in order if s in every[a]} for s in order}
        self.after = {s: _closure(s, every) for s in order}
        self.before = {s: _closure(s, backward) for s in order}
        self.static_after = {s: _closure(s, self.succ) for s in order}
        self.targets = {t for ts in routes.values() for t in ts}

    def region(self, entry: str, exit_: str) -> set[str] | None:
        if exit_ not in self.static_after[entry] or entry == exit_:
            return None
        group = {s for s in self.static_after[entry] if exit_ in self.static_after[s]}
        for s in group:
            if s not in self.plain or (s != entry and (s in self.targets or not self.deps[s] <= group)):
                return None
            if s != exit_ and not self.succ[s] <= group:
                return None
        return group

    def plan(self, scope: set[str]) -> list[tuple[str, str, tuple[str, ...], list]]:  # type: ignore[type-arg]
        order = self.topo.order
        found = [(group, e, x) for e in scope for x in scope if (group := self.region(e, x)) and group < scope
                 and any(s not in group and s not in self.before[e] and s not in self.after[x] for s in scope)]
        found.sort(key=lambda c: (-len(c[0]), order.index(c[1])))
        chosen: list[tuple[set[str], str, str]] = []
        for group, e, x in found:
            if all(group.isdisjoint(other) for other, _, _ in chosen):
                chosen.append((group, e, x))
        return [(e, x, tuple(s for s in order if s in group), self.plan(group))
                for group, e, x in sorted(chosen, key=lambda c: order.index(c[1]))]


def planned(branches: tuple[Branch, ...]) -> list[tuple[str, str, tuple[str, ...], list]]:  # type: ignore[type-arg]
    return [(b.entry, b.exit, b.steps, planned(b.inner)) for b in branches]


def random_dag(rng: random.Random) -> tuple[list[str], dict[str, list[str]]]:
    order = [f"s{i}" for i in range(rng.randint(1, 14))]
    deps = {s: sorted(set(rng.sample(order[:i], min(rng.choice([0, 1, 1, 1, 2, 2, 3]), i)))) if i else []
            for i, s in enumerate(order)}
    return order, deps


def series_parallel(rng: random.Random, budget: int, order: list[str], deps: dict[str, list[str]],
                    first_needs: list[str]) -> list[str]:
    """A random series-parallel block appended to `order`, its first steps needing `first_needs`; its last steps."""
    if budget <= 1 or rng.random() < 0.12:
        name = f"s{len(order)}"
        order.append(name)
        deps[name] = sorted(first_needs)
        return [name]
    if rng.random() < 0.5:
        left = series_parallel(rng, budget // 2, order, deps, first_needs)
        return series_parallel(rng, budget - budget // 2, order, deps, left)
    return [end for _ in range(rng.randint(2, 3)) for end in series_parallel(rng, budget // 2, order, deps,
                                                                               first_needs)]


def test_the_plan_is_the_plan_of_its_definition_on_random_shapes() -> None:
    rng = random.Random(20261203)
    with_branches = nested = 0
    for trial in range(2400):
        if trial % 2:
            order, deps = random_dag(rng)
        else:
            order, deps = [], {}
            series_parallel(rng, rng.randint(4, 36), order, deps, [])
        routes = {s: sorted(set(rng.sample([*order, END], rng.randint(1, 2)))) for s in order if rng.random() < 0.08}
        plain = {s for s in order if s not in routes and rng.random() < 0.94}
        topo = Topology(order=order, deps=deps, routes=routes)
        expected = Definition(topo, plain).plan(set(order))
        assert planned(plan_branches(topo, plain)) == expected, (order, deps, routes, sorted(plain))
        with_branches += bool(expected)
        nested += any(inner for *_, inner in expected)
    assert with_branches > 800 and nested > 0  # the shapes exercised branches, and nested ones


def test_a_thousand_step_playbook_validates_and_plans(tmp_path: Path) -> None:
    """Validate found loops by recursion: a 1,000-step chain went past Python's recursion limit (a traceback)."""
    steps = "".join(f"  - {{id: s{i}, template: \"${{{{ {i} }}}}\"}}\n" for i in range(1000))
    path = tmp_path / "long.yaml"
    path.write_text(f"name: long\nsteps:\n{steps}", encoding="utf-8")
    checked = cli("validate", str(path), cwd=tmp_path)
    assert checked.returncode == 0 and "Traceback" not in checked.stderr, checked.stderr
    assert branches_of(load_and_validate(path)) == ()  # a chain: nothing runs beside anything
