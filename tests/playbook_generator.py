"""Random small playbooks and the contract every one must keep (issue 21): `validate` refuses it with file:line, or the
run ends `done` with every step on the path taken run exactly once (a loop's steps once per turn) and no other step
run, or it ends `failed` naming a step or an output — never a traceback, never `internal error:`.

Shapes: llm steps with and without an output schema, file tools, a tool that fails under each `on_error`, switches,
gotos (forward, and `end`), `when`, maps (over lists, and over things that are not lists), approvals (some rejected
once, looping back), a sub-playbook; references to fields that exist and to fields that do not, guarded or not.

The path taken is computed here from the playbook's text and the decisions the run recorded (which case a switch
chose, which step failed, what the reviewer said), by the rule in the README — not by the engine's own gates."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CHILD = """
name: child
inputs: {topic: {type: string}}
steps:
  - {id: s, llm: {prompt: "总结 ${{ inputs.topic }}"}}
outputs: {summary: "${{ steps.s.output }}"}
"""
SCHEMA = {"title": "string", "n": "integer", "tags": ["string"]}


@dataclass
class Case:
    seed: int
    text: str
    rejects: int  # how many times each approval that can loop back is rejected before it is approved


def generate(seed: int) -> Case:
    rng = random.Random(seed)
    count = rng.randint(2, 8)
    ids = [f"s{i}" for i in range(count)]
    steps: list[dict[str, Any]] = []
    typed: set[str] = set()  # llm steps with an output schema
    looped: set[str] = set()  # steps an approval's on_reject goes back to
    for i, step_id in enumerate(ids):
        before, after = ids[:i], ids[i + 1:]
        step: dict[str, Any] = {"id": step_id}
        kind = rng.choice(["llm", "llm", "typed", "write", "fail", "switch", "map", "approval", "child"])
        if kind == "switch" and after:
            cases = [{"if": f"${{{{ inputs.k == '{v}' }}}}", "goto": rng.choice([*after, "end"])}
                     for v in rng.sample(["a", "b", "c"], rng.randint(1, 2))]
            step["switch"] = {"cases": cases, **({"default": rng.choice(after)} if rng.random() < 0.5 else {})}
        elif kind == "map":
            source = rng.choice(["${{ inputs.items }}", "${{ [1, 2] }}", "${{ inputs.items }}",
                                 *(["${{ inputs.text }}"] if rng.random() < 0.3 else []),
                                 *(f"${{{{ steps.{s}.output.tags }}}}" for s in before if s in typed)])
            step.update(map=source, llm={"prompt": f"第 ${{{{ item }}}} 项 {_ref(rng, before, typed)}"})
        elif kind == "approval" and before:
            shown = rng.choice(before)
            step["approval"] = {"title": "审核", "show": f"${{{{ steps.{shown}.output }}}}"}
            previous = steps[-1]
            if "llm" in previous and "map" not in previous and "goto" not in previous and rng.random() < 0.5:
                step["approval"]["on_reject"] = previous["id"]
                previous["max_visits"] = 3
                step["needs"] = [previous["id"]]
                looped.add(previous["id"])
        elif kind == "typed":
            typed.add(step_id)
            step["llm"] = {"prompt": f"写 {_ref(rng, before, typed)}", "output": SCHEMA}
        elif kind == "write":
            step.update(tool="file.write", **{"with": {"path": f"{step_id}.md", "content": _ref(rng, before, typed)}})
        elif kind == "fail":
            policy = rng.choice(["skip", {"default": {"text": "无"}}, "fail",
                                 *([{"goto": rng.choice([*after, "end"])}] if after else [])])
            step.update(tool="file.read", on_error=policy, **{"with": {"path": "no-such-file.md"}})
        elif kind == "child":
            step.update(playbook="child.yaml", **{"with": {"topic": _ref(rng, before, typed)}})
        else:
            step["llm"] = {"prompt": f"写 {_ref(rng, before, typed)}"}
        # a step of an approval loop is needed only by its approval: a step needing it would run once per turn
        # by the README's rule, which this oracle does not count
        needable = [s for s in before if s not in looped]
        if needable and rng.random() < 0.3 and "needs" not in step:
            step["needs"] = rng.sample(needable, rng.randint(1, min(2, len(needable))))
        if rng.random() < 0.15 and "switch" not in step and "approval" not in step:
            step["when"] = rng.choice(["${{ inputs.k == 'a' }}", "${{ false }}", "${{ true }}"])
        if rng.random() < 0.15 and "switch" not in step and after:
            step["goto"] = rng.choice([*after, "end"])
        steps.append(step)
    outputs = {f"o{j}": _ref(rng, ids, typed, whole=True) for j in range(rng.randint(0, 2))}
    doc = {"name": f"g{seed}", "inputs": {"k": {"type": "string", "default": rng.choice("abc")},
                                         "items": {"type": "list", "default": [1, 2]},
                                         "text": {"type": "string", "default": "x,y"}},
           "steps": steps, **({"outputs": outputs} if outputs else {})}
    return Case(seed, yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), rng.choice([0, 0, 1]))


def _ref(rng: random.Random, steps: list[str], typed: set[str], whole: bool = False) -> str:
    """A reference to an earlier step: its output, a field it has or has not, its status; guarded or not."""
    if not steps or rng.random() < 0.2:
        return rng.choice(["${{ inputs.k }}", "${{ run.date }}", "纯文本", "纯文本",
                           *(["${{ inputs.nope }}"] if rng.random() < 0.2 else [])])
    step = rng.choice(steps)
    wrong = rng.random() < 0.08  # a field the step does not have
    field_name = "nope" if wrong else rng.choice(["title", "n"]) if step in typed else None
    expr = rng.choice([f"steps.{step}.output", f"steps.{step}.status", f"steps.{step}.output"])
    if field_name is not None:
        expr = rng.choice([f"steps.{step}.output.{field_name}", f"steps.{step}.output.{field_name} | default('无')",
                           f"steps.{step}.output.{field_name} if steps.{step}.status == 'done' else '无'"])
    return f"${{{{ {expr} }}}}" if whole else f"（${{{{ {expr} }}}}）"


@dataclass
class Tally:
    cases: int = 0
    refused: int = 0
    done: int = 0
    failed_named: int = 0
    tracebacks: list[str] = field(default_factory=list)
    silent_skips: list[str] = field(default_factory=list)
    wrong_counts: list[str] = field(default_factory=list)
    unnamed_failures: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"{self.cases} cases: {self.refused} refused by validate, {self.done} done, {self.failed_named} failed "
                f"naming a step or output; {len(self.tracebacks)} tracebacks or internal errors, "
                f"{len(self.silent_skips)} silent skips, {len(self.wrong_counts)} steps run a wrong number of times, "
                f"{len(self.unnamed_failures)} failures naming nothing")

    @property
    def broken(self) -> list[str]:
        return self.tracebacks + self.silent_skips + self.wrong_counts + self.unnamed_failures


def step_ends(run_dir: Path) -> Counter[str]:
    """How many times each step finished (ran, or was skipped by its own `when`), from the run's events file."""
    ended: Counter[str] = Counter()
    for line in (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if event.get("event") == "step_end" and "." not in str(event.get("run_id", "")):
            ended[event["step"]] += 1
    return ended


def expected_runs(playbook: Any, decisions: dict[str, list[dict[str, Any]]], turns: dict[str, int]) -> dict[str, int]:
    # `turns`: approval → how many times it was rejected
    """Each step's number of runs by the README's rule, from the decisions the run took: a step runs when one of the
    ways into it was taken — a `needs` (or the step before it) from a step that ran, or a route that chose it — and
    once per turn of a loop it is in."""
    from runner.engine.gates import onward_targets, route_targets

    topo = playbook.topology
    back = topo.back_edges()
    steps = {s.id: s for s in playbook.spec.steps}
    ran: dict[str, bool] = {}
    for step_id in _forward_order(topo, back):
        ways = [(a, b) for a, b in dict.fromkeys(topo.edges()) if b == step_id and (a, b) not in back]
        taken = False
        for source, _ in ways:
            if not ran.get(source):
                continue
            targets = topo.routes.get(source)
            if targets is None or step_id not in targets:
                taken = True
            else:
                last = (decisions.get(source) or [None])[-1]
                chosen = route_targets(steps[source], last, onward_targets(steps[source], topo))
                taken = taken or step_id in chosen
        ran[step_id] = step_id in topo.entries or taken
    counts = {s: 1 if ran[s] else 0 for s in topo.order}
    for approval, rejected in turns.items():  # each rejection runs the step it goes back to, and the approval, again
        target = steps[approval].approval.on_reject
        counts[approval] += rejected
        counts[target] += rejected
    return counts


def _forward_order(topo: Any, back: set[tuple[str, str]]) -> list[str]:
    pending = {s: {a for a, b in topo.edges() if b == s and (a, b) not in back and a in topo.deps} for s in topo.order}
    order: list[str] = []
    while pending:
        ready = [s for s, deps in pending.items() if not deps - set(order)]
        if not ready:  # a cycle of needs: validate refuses those, so the case never gets here
            raise AssertionError(f"no forward order for {sorted(pending)}")
        order += ready
        for s in ready:
            del pending[s]
    return order


def check_case(case: Case, folder: Path, runner: Any, tally: Tally) -> None:
    """Validate and run one case in `folder` (a project whose default model is the fake server), and count it."""
    import asyncio

    from runner.dsl.inputs import resolve_inputs
    from runner.dsl.validate import load_and_validate
    from runner.errors import PlaybookError

    tally.cases += 1
    path = folder / f"g{case.seed}.yaml"
    path.write_text(case.text, encoding="utf-8")
    where = f"seed {case.seed}"
    try:
        playbook = load_and_validate(path)
    except PlaybookError as exc:
        if all(d.line >= 1 for d in exc.diagnostics):
            tally.refused += 1
        else:
            tally.unnamed_failures.append(f"{where}: validate refused without a line: {exc}")
        return
    except Exception as exc:  # a traceback a user would see
        tally.tracebacks.append(f"{where}: validate raised {type(exc).__name__}: {exc}")
        return
    try:
        outcome, turns = asyncio.run(_drive(runner, playbook, resolve_inputs(playbook.spec, {}, file=str(path)),
                                            case.rejects))
    except Exception as exc:
        tally.tracebacks.append(f"{where}: the run raised {type(exc).__name__}: {exc}")
        return
    if outcome.status == "failed":
        error = outcome.error or ""
        if "internal error" in error or "Traceback" in error:
            tally.tracebacks.append(f"{where}: {error}")
        elif "step '" in error or error.startswith("outputs"):
            tally.failed_named += 1
        else:
            tally.unnamed_failures.append(f"{where}: {error}")
        return
    if outcome.status != "done":
        tally.unnamed_failures.append(f"{where}: ended {outcome.status}: {outcome.error}")
        return
    tally.done += 1
    ended = step_ends(Path(outcome.run_dir))
    expected = expected_runs(playbook, _decisions(Path(outcome.run_dir)), turns)
    for step_id, count in expected.items():
        if count and not ended[step_id]:
            tally.silent_skips.append(f"{where}: step '{step_id}' is on the path taken but never ran")
        elif ended[step_id] != count:
            tally.wrong_counts.append(f"{where}: step '{step_id}' ran {ended[step_id]} times, expected {count}")


async def _drive(runner: Any, playbook: Any, inputs: dict[str, Any], rejects: int) -> tuple[Any, dict[str, int]]:
    outcome = await runner.start(playbook, inputs)
    rejected: Counter[str] = Counter()
    while outcome.status == "waiting" and outcome.pending:
        step = outcome.pending["step"]
        target = outcome.pending.get("can_reject_to")
        if target and rejected[step] < rejects:
            rejected[step] += 1
            decision = {"action": "reject", "comment": "再改改", "by": "test"}
        else:
            decision = {"action": "approve", "by": "test"}
        outcome = await runner.resume(outcome.run_id, decision=decision)
    return outcome, dict(rejected)


def _decisions(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Per step, each finished visit's status and output (what routes read), in order."""
    found: dict[str, list[dict[str, Any]]] = {}
    for line in (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if event.get("event") == "step_end" and "." not in str(event.get("run_id", "")):
            found.setdefault(event["step"], []).append({"status": event["status"], "output": event.get("output")})
    return found
