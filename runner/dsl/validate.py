"""Static checks on a loaded playbook. Pure (reads sub-playbook files only); all errors collected."""

from __future__ import annotations

import collections
import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
from pydantic import BaseModel

from runner.dsl import labels, template_check, templates
from runner.dsl.fallthrough import joined_ways
from runner.dsl.inline_body import body_playbook
from runner.dsl.inputs import coerce, unmet_requirements
from runner.dsl.kinds.tool import declared_type_problems
from runner.dsl.lint import foreign_templates
from runner.dsl.load import LoadedPlaybook, load_playbook, read_playbook_text
from runner.dsl.output_schema import SchemaError, to_json_schema, to_model
from runner.dsl.reach import reach
from runner.dsl.references import References, step_titled
from runner.dsl.spec import PlaybookSpec, Step
from runner.dsl.topology import END, Topology, build_topology, error_target
from runner.errors import Diagnostic, PlaybookError, PlaybookValidationError, did_you_mean, framed
from runner.i18n import _
from runner.messages import kind_of
from runner.registry import get_tool, tool_names


@dataclass
class Playbook:
    """A playbook that passed every static check, ready to compile."""

    loaded: LoadedPlaybook
    topology: Topology
    output_models: dict[str, type[BaseModel]] = field(default_factory=dict)
    # the JSON Schema each model was made from: bounds and labels (`title`) for pages and approval forms
    output_schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    children: dict[str, Playbook] = field(default_factory=dict)
    warnings: list[Diagnostic] = field(default_factory=list)  # likely mistakes that do not stop a run
    # the engine's compiled graph of this source, built at its first run in the process (runner/engine/compile.py)
    graphs: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def spec(self) -> PlaybookSpec:
        return self.loaded.spec

    @property
    def path(self) -> Path:
        return self.loaded.path

    def step(self, step_id: str) -> Step:
        return next(s for s in self.spec.steps if s.id == step_id)

    @functools.cached_property
    def mapped(self) -> dict[str, bool]:
        """Every step id, in order, and whether that step is a map."""
        return {s.id: s.map is not None for s in self.spec.steps}

    @functools.cached_property
    def step_schemas(self) -> dict[str, Any]:
        """Each step's output schema (a map's: the list of its items'), for labels: see runner.dsl.labels."""
        return labels.step_schemas(self)

    @functools.cached_property
    def schemas(self) -> dict[str, Any]:
        """Schemas that label a run's steps, inputs and outputs: see runner.dsl.labels."""
        return labels.playbook_schemas(self)

    def model_aliases(self) -> set[str]:
        """Aliases its LLM and agent steps (and its sub-playbooks') call."""
        spec = self.spec
        used = {s.model or spec.defaults.model for s in spec.steps if s.llm is not None or s.agent is not None}
        for child in self.children.values():
            used |= child.model_aliases()
        return used


def load_and_validate(path: str | Path, text: str | None = None) -> Playbook:
    """The playbook at `path` (or `text`, the source a run was started with), validated — once per source in a
    process: a worker, the web server and an eval suite meet the same playbook again and again (each resume of an
    approval used to validate it anew). A hit holds only while the sub-playbook files it read are unchanged."""
    if text is None:
        text = read_playbook_text(Path(path))  # the size bound and the file's problems, said as load_playbook does
    key = (str(path), hashlib.sha256(text.encode()).hexdigest())
    found = _VALIDATED.get(key)
    if found is not None and all(_stamp(dep) == stamp for dep, stamp in found[1]):
        _VALIDATED.move_to_end(key)
        return found[0]
    playbook = validate(load_playbook(path, text))
    _VALIDATED[key] = (playbook, tuple((dep, _stamp(dep)) for dep in _files_read(playbook)))
    while len(_VALIDATED) > VALIDATED_KEPT:
        _VALIDATED.popitem(last=False)
    return playbook


VALIDATED_KEPT = 32
Stamps = tuple[tuple[Path, tuple[int, int] | None], ...]  # each sub-playbook file read: (mtime_ns, size)
# (path, sha256 of the text) → the playbook and the stamps of the files it read
_VALIDATED: collections.OrderedDict[tuple[str, str], tuple[Playbook, Stamps]] = collections.OrderedDict()


def _files_read(playbook: Playbook) -> set[Path]:
    """The sub-playbook files its validation read (an inline body is the playbook's own file)."""
    found: set[Path] = set()
    for child in playbook.children.values():
        if child.path.resolve() != playbook.path.resolve():
            found.add(child.path.resolve())
        found |= _files_read(child)
    return found


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


@functools.lru_cache(maxsize=64)  # a run page refreshes every few seconds; the source of a run never changes
def run_schemas(path: str, source: str) -> dict[str, Any]:
    """The schemas labelling a run (Playbook.schemas) from the playbook text it was started with; none when that
    text no longer validates (a run of an older version)."""
    try:
        return load_and_validate(path, source).schemas
    except PlaybookError:
        return labels.NO_SCHEMAS


def validate(loaded: LoadedPlaybook, _stack: tuple[Path, ...] = (), *, bound: frozenset[str] = frozenset()) -> Playbook:
    """`bound`: names every template may read besides the usual ones (an inline body's item and `with:` values)."""
    checker = _Checker(loaded, _stack, bound)
    playbook = checker.run()
    if checker.errors:
        raise PlaybookValidationError(checker.errors)
    return playbook


class _Checker:
    def __init__(self, loaded: LoadedPlaybook, stack: tuple[Path, ...], bound: frozenset[str]) -> None:
        self.loaded = loaded
        self.bound = set(bound)
        self.spec = loaded.spec
        self.source = loaded.source
        self.stack = (*stack, loaded.path.resolve())
        self.errors: list[Diagnostic] = []
        self.ids = [s.id for s in self.spec.steps]
        self.playbook = Playbook(loaded, build_topology(self.spec))
        self.body_warnings: list[Diagnostic] = []

    def error(self, path: tuple[Any, ...], message: str, *, key: bool = False) -> None:
        self.errors.append(self.source.diag(path, message, key=key))

    def run(self) -> Playbook:
        self.check_ids()
        self.check_inputs()
        self.check_requirements()
        self.check_triggers()
        for i, step in enumerate(self.spec.steps):
            self.check_targets(i, step)
            self.check_kind(i, step)
        if not self.errors:  # field checks need known steps and models
            self.refs = References(self.spec, reach(self.playbook.topology),
                                   output_models=self.playbook.output_models,
                                   output_schemas=self.playbook.output_schemas,
                                   child_outputs={k: list(c.spec.outputs) for k, c in self.playbook.children.items()})
            text_steps = {s.id for s in self.spec.steps if (s.llm is not None or s.agent is not None)
                          and s.map is None and s.id not in self.playbook.output_models}
            for i, step in enumerate(self.spec.steps):
                self.check_templates(i, step)
                self.check_map(i, step)
                self.check_editable(i, step)
                if step.tool is not None:
                    for name, problem in declared_type_problems(step, step.tool, self.spec.inputs, text_steps):
                        self.error(("steps", i, "with", name), problem)
            self.check_templates_of(("outputs",), self.spec.outputs, set(self.bound), "outputs")
            self.check_graph()
        self.playbook.warnings = [self.source.diag(path, message) for path, message in
                                  [*foreign_templates(self.spec), *joined_ways(self.spec, self.playbook.topology)]]
        self.playbook.warnings += self.body_warnings
        return self.playbook

    def check_ids(self) -> None:
        seen: set[str] = set()
        for i, step in enumerate(self.spec.steps):
            if step.id in seen:
                self.error(("steps", i, "id"), _("duplicate step id '{step}'").format(step=step.id))
            if step.id == END:
                self.error(("steps", i, "id"), _("'end' is reserved for `goto: end`; rename the step"))
            seen.add(step.id)

    def check_requirements(self) -> None:
        """Each `requires` is one expression of the declared inputs: it is checked before the run exists."""
        before = len(self.errors)
        for i, requirement in enumerate(self.spec.requires):
            path = ("requires", i, "that")
            if templates.lone_expression(requirement.that) is None:
                self.error(path, _("requires: write the condition as one expression, e.g. `${{ inputs.feeds or "
                                   "inputs.pages }}`"))
                continue
            try:
                tree = template_check.parse(requirement.that)
            except templates.TemplateError as exc:
                self.error(path, _("requires: {exc}").format(exc=exc))
                continue
            for ref in template_check.references(tree):
                if ref.chain[0] != "inputs":
                    self.error(path, _("requires: reads '{joined}', but a requirement is checked before the run, "
                                       "from the inputs alone").format(joined='.'.join(ref.chain)))
                elif len(ref.chain) > 1 and ref.chain[1] not in self.spec.inputs:
                    self.error(path, _("requires: no input '{name}'{hint}").format(
                                         name=ref.chain[1],
                                         hint=did_you_mean(ref.chain[1], list(self.spec.inputs))))
        self.requirements_readable = len(self.errors) == before  # else a trigger's inputs are not held to them

    def check_inputs(self) -> None:
        for name, spec in self.spec.inputs.items():
            if spec.default is not None:
                try:
                    coerce(name, spec, spec.default)
                except ValueError as exc:
                    self.error(("inputs", name, "default"), _("input '{name}': default {exc}").format(
                                                                name=name, exc=exc))

    def check_triggers(self) -> None:
        from runner.dsl.cron import CronError, check_cron

        for i, trigger in enumerate(self.spec.triggers):
            try:
                check_cron(trigger.cron, trigger.timezone)
            except CronError as exc:
                self.error(("triggers", i, "cron"), _("trigger {number}: {exc}").format(number=i + 1, exc=exc))
            for name in trigger.inputs:
                if name not in self.spec.inputs:
                    said = _("trigger {number}: unknown input '{name}'{hint}").format(
                        number=i + 1, name=name, hint=did_you_mean(name, list(self.spec.inputs)))
                    self.error(("triggers", i, "inputs", name), said, key=True)
            self.check_trigger_inputs(i, trigger.inputs)

    def check_trigger_inputs(self, i: int, given: dict[str, Any]) -> None:
        """A trigger's inputs are known now: a scheduled run that would be refused every morning is refused here."""
        values: dict[str, Any] = {}
        for name, spec in self.spec.inputs.items():
            raw = given.get(name, spec.default)
            if raw is None:
                if spec.is_required:
                    self.error(("triggers", i, "inputs"), _("trigger {number}: missing input '{name}'; give it "
                                                            "under the trigger's inputs").format(
                                                              number=i + 1, name=name))
                values[name] = None
                continue
            try:
                values[name] = coerce(name, spec, raw)
            except ValueError as exc:
                self.error(("triggers", i, "inputs", name) if name in given else ("triggers", i),
                           _("trigger {number}: input '{name}': {exc}").format(number=i + 1, name=name, exc=exc))
                return
        if self.spec.requires and self.requirements_readable:
            for message in unmet_requirements(self.spec, values):
                self.error(("triggers", i, "inputs"), _("trigger {number}: {message}").format(
                                                          number=i + 1, message=message))

    def check_target(self, path: tuple[Any, ...], target: str, what: str, allow_end: bool) -> None:
        if target == END and allow_end:
            return
        if target not in self.ids:
            choices = [*self.ids, END] if allow_end else self.ids
            titled = step_titled(self.spec, target)
            hint = _(" — '{target}' is the title of step '{titled}'; write its id, '{titled}'").format(
                       target=target, titled=titled) if titled else \
                did_you_mean(str(target), choices)
            self.error(path, _("{what}: unknown step '{target}'{hint}").format(
                                 what=what, target=target, hint=hint))

    def check_targets(self, i: int, step: Step) -> None:
        where = _("step '{step}'").format(step=step.id)
        for j, need in enumerate(step.needs or []):
            self.check_target(("steps", i, "needs", j), need, _("{where} needs").format(where=where), False)
            if need == step.id:
                self.error(("steps", i, "needs", j), _("{where} cannot need itself").format(where=where))
        if step.goto is not None:
            self.check_target(("steps", i, "goto"), step.goto, _("{where} goto").format(where=where), True)
        if step.switch is not None:
            for j, case in enumerate(step.switch.cases):
                self.check_target(("steps", i, "switch", "cases", j, "goto"), case.goto,
                                  _("{where} goto").format(where=where), True)
            if step.switch.default is not None:
                self.check_target(("steps", i, "switch", "default"), step.switch.default,
                                  _("{where} default").format(where=where), True)
        if step.approval is not None and step.approval.on_reject is not None:
            self.check_target(("steps", i, "approval", "on_reject"), step.approval.on_reject,
                              _("{where} on_reject").format(where=where), False)
        if (target := error_target(step)) is not None:
            self.check_target(("steps", i, "on_error", "goto"), target, _("{where} on_error goto").format(
                                                                            where=where), True)

    def check_map(self, i: int, step: Step) -> None:
        """A literal that is not a list fails here, at its line, not halfway through a run."""
        value = step.map
        if value is None or isinstance(value, list | dict):
            return
        if isinstance(value, str) and (expr := templates.lone_expression(value)) is not None:
            if (problem := self.refs.map_problem(expr)) is not None:
                self.error(("steps", i, "map"), _("step '{step}': {problem}").format(
                                                    step=step.id, problem=problem))
            return
        shown = _("text with an expression inside (it would render to text)") if templates.is_template(value) \
            else kind_of(value)
        self.error(("steps", i, "map"), _("step '{step}': map needs a list — a YAML list, or one expression that "
                                          "gives a list, like `map: ${{{{ steps.load.rows }}}}` — not {shown}").format(
                                            step=step.id, shown=shown))

    def check_editable(self, i: int, step: Step) -> None:
        """Editable fields must be fields of the draft shown, when the draft's fields are known statically."""
        spec = step.approval
        if spec is None or not spec.editable:
            return
        fields = self.draft_fields(spec.show)
        if fields is None:
            return
        for j, name in enumerate(spec.editable):
            if name not in fields:
                shown = ", ".join(sorted(fields)) or "none"
                self.error(("steps", i, "approval", "editable", j),
                           _("step '{step}': editable field '{name}' is not a field of the draft shown{hint} "
                             "(fields: {shown})").format(
                               step=step.id, name=name, hint=did_you_mean(name, fields), shown=shown))

    def draft_fields(self, show: Any) -> set[str] | None:
        if isinstance(show, dict):
            return {str(k) for k in show}
        expr = templates.lone_expression(show) if isinstance(show, str) else None
        parts = expr.split(".") if expr else []
        if len(parts) in (2, 3) and parts[0] == "steps" and parts[1] in self.ids and parts[2:] in ([], ["output"]):
            step = self.playbook.step(parts[1])
            model = self.playbook.output_models.get(step.id)
            if step.tool is not None and step.map is None and step.tool in tool_names():
                model = get_tool(step.tool).output_model
            return set(model.model_fields) if model is not None and step.map is None else None
        return None

    def check_kind(self, i: int, step: Step) -> None:
        kind = step.described
        if kind.check is not None:
            kind.check(self, i, step, step.kind_spec)

    def check_body(self, i: int, step: Step) -> None:
        """An inline map body, validated as the sub-playbook it runs as; its findings point into this file."""
        bound = frozenset({*self.bound, step.item_name, *(step.with_ or {})})
        try:
            body = validate(body_playbook(self.loaded, i, step), self.stack, bound=bound)
        except PlaybookValidationError as exc:
            self.errors.extend(exc.diagnostics)
            return
        self.playbook.children[step.id] = body
        self.body_warnings += body.warnings
        for j, inner in enumerate(step.steps or []):
            if inner.approval is not None:
                self.error(("steps", i, "steps", j, "approval"), _(
                    "step '{step}': an approval inside an inline body would ask once per item, which a run cannot "
                    "do yet; review the items together in a step after the map").format(step=inner.id))

    def check_output(self, i: int, step: Step, kind: str, output: Any) -> None:
        """An `output:` schema → the model replies are checked against, and the JSON Schema pages show."""
        try:
            schema = to_json_schema(output)
            self.playbook.output_models[step.id] = to_model(schema, f"{self.spec.name}_{step.id}")
            self.playbook.output_schemas[step.id] = schema
        except (SchemaError, pydantic.PydanticUserError, TypeError) as exc:
            self.error(("steps", i, kind, "output"), _("step '{step}': {exc}").format(step=step.id, exc=exc))

    def check_child(self, i: int, step: Step) -> None:
        assert step.playbook is not None
        path = (self.loaded.path.parent / step.playbook).resolve()
        where = ("steps", i, "playbook")
        if path in self.stack:
            self.error(where, _("step '{step}': playbook '{playbook}' includes itself").format(
                                  step=step.id, playbook=step.playbook))
            return
        try:
            child = validate(load_playbook(path), self.stack)
        except PlaybookError as exc:
            reasons = "; ".join(str(d) for d in exc.diagnostics[:3])
            self.error(where, _("step '{step}': sub-playbook '{playbook}' is invalid: {reasons}").format(
                                  step=step.id, playbook=step.playbook, reasons=reasons))
            return
        self.playbook.children[step.id] = child
        for inner in child.spec.steps:  # a run cannot pause inside a sub-playbook; one behind `when:` may never ask
            if inner.approval is not None and inner.when is None:
                self.error(where, _("step '{step}': sub-playbook '{playbook}' asks for approval (step '{inner}'), "
                                    "which a sub-playbook cannot do yet; move the approval to this playbook, or "
                                    "put it behind a `when:` the sub-playbook's inputs turn off").format(
                                      step=step.id, playbook=step.playbook, inner=inner.id))
        args = step.with_ or {}
        for name in args:
            if name not in child.spec.inputs:
                self.error(("steps", i, "with", name), _("step '{step}': playbook '{playbook}' has no input "
                                                         "'{name}'{hint}").format(
                                                           step=step.id, playbook=step.playbook, name=name,
                                                           hint=did_you_mean(name, child.spec.inputs)), key=True)
        for name, spec in child.spec.inputs.items():
            if spec.is_required and name not in args:
                self.error(where, _("step '{step}': playbook '{playbook}' needs input '{name}'").format(
                                      step=step.id, playbook=step.playbook, name=name))

    def check_templates(self, i: int, step: Step) -> None:
        base = ("steps", i)
        local = self.bound | ({step.item_name} if step.map is not None else set())
        where = _("step '{step}'").format(step=step.id)
        self.check_templates_of((*base, "map"), step.map, set(self.bound), where)
        self.check_templates_of((*base, "when"), step.when, local, where)
        for path, value, reads_item in step.described.texts(step, step.kind_spec):
            self.check_templates_of((*base, *path), value, local if reads_item else set(self.bound), where)

    def check_templates_of(self, path: tuple[Any, ...], value: Any, local: set[str], where: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                self.check_templates_of((*path, k), v, local, where)
        elif isinstance(value, list):
            for j, v in enumerate(value):
                self.check_templates_of((*path, j), v, local, where)
        elif templates.is_template(value):
            try:
                tree = template_check.parse(value)
            except templates.TemplateError as exc:
                self.error(path, framed(where, str(exc)))
                return
            for attr in sorted(set(template_check.unsafe_names(tree))):
                self.error(path, _("{where}: access to '{attr}' is not allowed in templates (sandbox); use only "
                                   "data fields").format(where=where, attr=attr))
            for unknown in [*template_check.unknown_filters_and_tests(tree), *template_check.loop_outside_for(tree)]:
                self.error(path, framed(where, unknown))
            reader = path[1] if path[0] == "steps" else None
            for ref in template_check.references(tree):
                if any(part.startswith("_") for part in ref.chain):
                    continue  # already reported as a sandbox violation
                problem = self.refs.problem(ref, local, self.ids[reader] if isinstance(reader, int) else None)
                if problem:
                    self.error(path, framed(where, problem))

    def check_graph(self) -> None:
        topo = self.playbook.topology
        by_id = {s.id: (i, s) for i, s in enumerate(self.spec.steps)}
        for circle in Topology(order=topo.order, deps=topo.deps).cycles():  # `needs` alone, no routes
            first = circle[0]
            loop = " → ".join([*circle, first])
            self.error(("steps", by_id[first][0], "needs"),
                       _("step '{first}': these steps need each other ({loop}), so none can start; a loop goes "
                         "back with a `goto` or a switch case (and max_visits), not with `needs`").format(
                           first=first, loop=loop))
        for component in topo.cycles():
            has_goto = any(t in component for s in component for t in topo.loop_routes.get(s, []))
            guarded = any(by_id[s][1].max_visits for s in component)
            if has_goto and not guarded:
                first = next(s for s in component if s in topo.loop_routes)
                i = by_id[first][0]
                loop = " → ".join([*component, component[0]])
                path = ("steps", i, "switch") if by_id[first][1].switch else ("steps", i, "goto")
                self.error(path, _("step '{first}': the goto cycle {loop} has no guard; set max_visits on one of "
                                   "its steps").format(first=first, loop=loop))
        reached = topo.reachable()
        for step_id in topo.order:
            if step_id not in reached:
                self.error(("steps", by_id[step_id][0], "id"),
                           _("step '{step_id}' is unreachable: no step leads to it (add `needs` or a goto)").format(
                               step_id=step_id))
