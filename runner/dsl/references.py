"""What a `${{ }}` may read, checked before a run: names, inputs, steps, the fields a step's declared output has,
and reads of a step that may be off the path taken. Pure; used by validate.py."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from runner.dsl.reach import Reach
from runner.dsl.spec import PlaybookSpec, Step
from runner.dsl.template_check import Reference
from runner.errors import did_you_mean
from runner.i18n import _
from runner.registry import get_tool, tool_names

ROOT_NAMES = {"inputs", "steps", "run", "env", "secrets", "approval"}
JINJA_GLOBALS = {"range", "dict", "lipsum", "cycler", "joiner", "namespace", "loop", "true", "false",
                 "none", "True", "False", "None"}
RUN_FIELDS = {"id", "started_at", "date", "dir", "playbook", "timezone"}
APPROVAL_FIELDS = {"action", "comment", "by", "at", "edits", "step"}
COMMON_RESULT_FIELDS = {"output", "status", "visits", "error"}
SAFE_WHEN_SKIPPED = {"status", "visits", "error", "items", "errors"}  # a skipped step still has these
LIST_TYPES = {"list"}


class References:
    """Checks the references of one playbook's templates (`reader`: the step whose field it is; None for
    `outputs:`)."""

    def __init__(self, spec: PlaybookSpec, reach: Reach | None, *, output_models: dict[str, type[BaseModel]],
                 output_schemas: dict[str, dict[str, Any]], child_outputs: dict[str, list[str]]) -> None:
        self.spec = spec
        self.steps = {s.id: s for s in spec.steps}
        self.ids = list(self.steps)
        self.reach = reach
        self.output_models = output_models  # llm and agent steps' declared outputs
        self.output_schemas = output_schemas
        self.child_outputs = child_outputs  # sub-playbook steps → the outputs their playbook declares

    def problem(self, ref: Reference, local: set[str], reader: str | None) -> str | None:
        chain = ref.chain
        root = chain[0]
        if root in local or root in JINJA_GLOBALS:
            return None
        if root not in ROOT_NAMES:
            names = sorted(ROOT_NAMES | local)
            return _("unknown name '{root}'{hint}").format(root=root, hint=did_you_mean(root, names))
        if len(chain) < 2:
            return None
        name = chain[1]
        allowed: dict[str, Any] = {
            "inputs": self.spec.inputs, "env": self.spec.env, "secrets": self.spec.secrets,
            "run": RUN_FIELDS, "approval": APPROVAL_FIELDS, "steps": self.ids}
        if name not in allowed[root]:
            hint = {"env": _(" (list it under `env:`)"), "secrets": _(" (list it under `secrets:`)"),
                    "inputs": _(" (declare it under `inputs:`)")}.get(root, "")
            noun = {"steps": _("step"), "inputs": _("input"), "secrets": _("secret"),
                    "env": _("environment variable"), "run": _("run field"), "approval": _("approval field")}[root]
            return _("unknown {noun} '{name}'{hint}{value}{hint2}").format(
                       noun=noun, name=name, hint=did_you_mean(name, allowed[root]),
                       value=self.title_hint(root, name), hint2=hint)
        if root == "steps" and reader is not None and name != reader and self.reach is not None \
                and not self.reach.may_have_run(name, reader):
            return _("reads `{read}`, but no step leads from '{step}' to '{reader}' (a `needs`, the step before "
                     "it, a route): '{reader}' runs before it, or beside it, and then reads nothing; give "
                     "'{reader}' `needs: [{step}]`, or read it in a step after '{step}'").format(
                       read=".".join(chain), step=name, reader=reader)
        if root == "steps" and len(chain) >= 3:
            return self.field_problem(self.steps[name], chain[2:]) or self.path_problem(ref, reader)
        if root == "inputs" and len(chain) >= 3:
            return self.input_field_problem(name, chain[2])
        return None

    def input_field_problem(self, name: str, part: str) -> str | None:
        """A field read from an input whose type has none: a file input is its path, a text, not an object with
        a size or a name (what a Dify file variable has)."""
        kind = self.spec.inputs[name].type
        plain = {"string": str, "file": str, "integer": int, "number": float, "boolean": bool, "list": list,
                 "history": list}.get(kind)
        if plain is None or hasattr(plain, part):
            return None
        fix = _("; a file input is its path: read the file with a tool (file.read, sheet.read)") \
            if kind == "file" else ""
        return _("input '{name}' is a {kind}, which has no field '{part}'{fix}").format(
                   name=name, kind=kind, part=part, fix=fix)

    def title_hint(self, root: str, name: str) -> str:
        titled = step_titled(self.spec, name) if root == "steps" else None
        return _(" — '{name}' is the title of step '{titled}'; refer to it by its id").format(
                   name=name, titled=titled) if titled else ""

    def field_problem(self, step: Step, parts: tuple[str, ...]) -> str | None:
        fields = self.result_fields(step)
        if fields is not None and parts[0] not in fields:
            return _("step '{step}' has no field '{name}'{hint}").format(
                       step=step.id, name=parts[0], hint=did_you_mean(parts[0], fields))
        inside = parts[1:] if parts[0] == "output" else parts if parts[0] not in COMMON_RESULT_FIELDS else ()
        if step.map is not None and parts[0] == "output" and inside and not hasattr(list, inside[0]):
            return _("`steps.{step}.output` is a list, one entry per item of its `map:`, with no field '{name}'; read "
                     "one entry's (`steps.{step}.output[0].{name}`) or every entry's (`steps.{step}.output | "
                     "map(attribute='{name}') | list`)").format(step=step.id, name=inside[0])
        if not inside or step.map is not None:
            return None
        schema = self.output_schema(step)
        if schema is None:
            if step.described.calls_model and not hasattr(str, inside[0]):
                return (_("step '{step}' has no `output:` schema, so its output is text without fields; declare "
                          "`output: {{{name}: string}}` to read `{name}` from it").format(
                            step=step.id, name=inside[0]))
            return None
        return _schema_problem(step.id, schema, inside)

    def output_schema(self, step: Step) -> dict[str, Any] | None:
        """The JSON Schema of a step's output, when it is declared: an llm/agent `output:`, a tool's output model,
        a sub-playbook's outputs."""
        if step.id in self.output_schemas:
            return self.output_schemas[step.id]
        if step.tool is not None and step.tool in tool_names():
            model = get_tool(step.tool).output_model
            if model is not None:
                return _object_of(f.alias or n for n, f in model.model_fields.items())
        if step.id in self.child_outputs:
            return _object_of(self.child_outputs[step.id])
        if isinstance(step.template, dict):  # a mapping written out: its keys are the output's fields
            return _object_of(str(key) for key in step.template)
        return None

    def result_fields(self, step: Step) -> set[str] | None:
        """Fields of `steps.<id>` a template may read, or None when they are not known statically."""
        fields = set(COMMON_RESULT_FIELDS)
        if step.map is not None:
            return fields | {"items", "errors"}
        if step.tool is not None:
            out = get_tool(step.tool).output_model if step.tool in tool_names() else None
            return fields | set(out.model_fields) if out else None
        if step.llm is not None or step.agent is not None:
            model = self.output_models.get(step.id)
            return fields | set(model.model_fields) if model else fields
        if step.playbook is not None:
            outputs = self.child_outputs.get(step.id)
            return fields | set(outputs) if outputs is not None else None
        if step.template is not None:
            return fields | {str(key) for key in step.template} if isinstance(step.template, dict) else None
        if step.approval is not None:
            return None
        return fields

    def path_problem(self, ref: Reference, reader: str | None) -> str | None:
        """A read into the output of a step that may be off the path taken, with nothing to catch a null."""
        step, parts = ref.chain[1], ref.chain[2:]
        if ref.guarded or self.reach is None or step == reader or parts[0] in SAFE_WHEN_SKIPPED:
            return None
        if parts == ("output",):
            return None
        read = ".".join(ref.chain)
        skipped_by = self.steps[step].when
        if skipped_by is not None and (reader is None or self.steps[reader].when != skipped_by):
            # (a reader under the very same `when:` runs only when the step did)
            return (_("reads `{read}`, but step '{step}' is skipped when its `when:` is false, and then its output "
                      "is null; guard the read: `{read} if steps.{step}.status == 'done' else …` or "
                      "`{read} | default(…)`").format(read=read, step=step))
        if _may_fail_to(self.steps[step], parts):
            return (_("reads `{read}`, but when step '{step}' fails its `on_error` gives it an output without that "
                      "field; guard the read: `{read} if steps.{step}.status == 'done' else …` or "
                      "`{read} | default(…)`, or give `on_error: {{default: …}}` a value that has it").format(
                        read=read, step=step))
        if self.reach.surely_ran(step, reader):
            return None
        who = f"'{reader}'" if reader else _("the end of the run")
        return (_("reads `{read}`, but step '{step}' does not run on every path to {who} (a switch, goto or error "
                  "branch can leave it out), and then its output is null; guard the read: `{read} if "
                  "steps.{step}.status == 'done' else …` or `{read} | default(…)`").format(
                    read=read, step=step, who=who))

    def map_problem(self, expr: str) -> str | None:
        """`map:` over a value whose declared type is not a list."""
        parts = expr.split(".")
        if len(parts) == 2 and parts[0] == "inputs" and parts[1] in self.spec.inputs:
            kind = self.spec.inputs[parts[1]].type
            if kind in LIST_TYPES or kind == "object":
                return None
            fix = _("; for comma-separated text, map over `${{{{ inputs.{name}.split(',') }}}}`, or declare "
                    "`{name}: {{type: list}}`") if kind == "string" else _("; declare `{name}: {{type: list}}`")
            fix = fix.format(name=parts[1])
            return _("map over input '{name}', which is declared {kind}, not a list{fix}").format(
                       name=parts[1], kind=kind, fix=fix)
        if len(parts) >= 3 and parts[0] == "steps" and parts[1] in self.ids:
            step = self.steps[parts[1]]
            if parts[2:] == ["output"] and step.map is None and (step.llm is not None or step.agent is not None) \
                    and step.id not in self.output_models:
                return _("map over `{expr}`, the text step '{step}' answers, not a list; give '{step}' an `output:` "
                         "with a list field (`output: {{titles: [string]}}`) and map over it "
                         "(`steps.{step}.output.titles`)").format(expr=expr, step=step.id)
            schema = self.output_schema(step) if step.map is None else None
            inner = parts[3:] if parts[2] == "output" else parts[2:]
            for part in inner:
                schema = (schema or {}).get("properties", {}).get(part) if isinstance(schema, dict) else None
            declared = schema.get("type") if isinstance(schema, dict) else None
            if isinstance(declared, str) and declared not in ("array", "object"):
                return _("map over `{expr}`, which the step's output declares {declared}, not a list").format(
                           expr=expr, declared=declared)
        return None


def _may_fail_to(step: Step, parts: tuple[str, ...]) -> bool:
    """Whether a failure the step tolerates (`on_error: skip`, or a `default` without the field read) leaves an
    output that `parts` cannot be read from. A map's output is a list, read by index: not followed."""
    policy, value = step.error_policy
    field = parts[1] if parts[0] == "output" and len(parts) > 1 else parts[0]  # `steps.x.title`: the output's, lifted
    if step.map is not None or policy not in ("skip", "default") or field == "output":
        return False
    return not (policy == "default" and isinstance(value, dict) and field in value)


def step_titled(spec: PlaybookSpec, name: str) -> str | None:
    """The id of the step whose title is `name` (a title written where an id belongs)."""
    return next((s.id for s in spec.steps if s.title and s.title.strip() == str(name).strip()), None)


def _object_of(fields: Iterable[str]) -> dict[str, Any]:
    """An object schema with these fields and no others (their own types unknown)."""
    return {"type": "object", "properties": {name: {} for name in fields}, "additionalProperties": False}


def _schema_problem(step: str, schema: dict[str, Any], parts: tuple[str, ...]) -> str | None:
    """A field a declared object schema does not have (nested objects followed; lists and text left alone)."""
    where = f"steps.{step}.output"
    for part in parts:
        properties = schema.get("properties")
        if schema.get("type") != "object" or not isinstance(properties, dict):
            return None
        if part not in properties:
            if schema.get("additionalProperties") not in (None, False):
                return None
            return _("`{where}` has no field '{part}'{hint} (its declared output)").format(
                       where=where, part=part, hint=did_you_mean(part, properties))
        schema = properties[part] if isinstance(properties[part], dict) else {}
        where += f".{part}"
    return None
