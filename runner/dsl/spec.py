"""The playbook DSL v1 as pydantic models — the single source of validation, JSON Schema and docs."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import InitErrorDetails

from runner.dsl.fields import Duration, Model, StepId
from runner.dsl.kinds import BUILT_IN, KINDS, RESERVED, StepKind
from runner.dsl.kinds.agent import AgentSpec
from runner.dsl.kinds.approval import ApprovalSpec
from runner.dsl.kinds.switch import SwitchSpec
from runner.dsl.llm_spec import LlmSpec
from runner.i18n import _


class Retry(Model):
    attempts: int = Field(4, ge=1, le=20, description="tries in all, the first included")
    backoff: Duration = Field(1.0, description="first wait; doubles each try, with jitter")
    max_backoff: Duration = Field(60.0, description="longest wait between tries")


class Defaults(Model):
    model: str = Field("default", description="model alias from playbook.toml, or a litellm model id")
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1)
    timeout: Duration = Field(120.0, description="per LLM or tool call")
    retry: Retry = Field(default_factory=Retry)


class Limits(Model):
    max_cost: float | None = Field(None, ge=0, description="stop the run cleanly past this cost "
                                                           "(project currency, CNY by default)")
    concurrency: int = Field(8, ge=1, le=256, description="default concurrency of map steps")


InputType = Literal["string", "integer", "number", "boolean", "file", "list", "object", "history"]


class InputSpec(Model):
    type: InputType = "string"
    title: str | None = Field(None, description="a short label for forms and reports (default: the description "
                                                "up to its first comma or bracket, when that is short)")
    description: str | None = None
    default: Any = None
    required: bool | None = Field(None, description="defaults to true when there is no default")
    enum: list[Any] | None = None
    min_items: int | None = Field(None, ge=0, description="list inputs: at least this many items; fewer is "
                                                         "refused before the run starts, before anything is spent")
    max_length: int | None = Field(None, ge=1, description="string inputs: at most this many characters; longer "
                                                          "is refused before the run starts")

    @property
    def is_required(self) -> bool:
        return self.required if self.required is not None else self.default is None

    @model_validator(mode="after")
    def _min_items_of_a_list(self) -> InputSpec:
        if self.min_items is not None and self.type not in ("list", "history"):
            raise ValueError(_("min_items applies to list inputs; this input is a {type}").format(type=self.type))
        if self.max_length is not None and self.type != "string":
            raise ValueError(_("max_length applies to string inputs; this input is a {type}").format(type=self.type))
        return self


class Requirement(Model):
    that: str = Field(description="a `${{ }}` expression of the inputs that must be true, e.g. "
                                  "`${{ inputs.feeds or inputs.pages }}`")
    message: str = Field(description="what the user is told when it is false: which input to give, with an example")


class OnErrorDefault(Model):
    default: Any = Field(description="the output to use instead (in a map: for each failed item)")


class OnErrorGoto(Model):
    goto: str = Field(description="the error branch: a step id, or 'end'")


OnError = Literal["fail", "skip"] | OnErrorDefault | OnErrorGoto
_MAX_FAILURES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def parse_max_failures(value: Any) -> int | str | None:
    """A count of items (3) or a share of them ('10%')."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    if isinstance(value, str) and (match := _MAX_FAILURES.match(value)) and float(match.group(1)) <= 100:
        return f"{float(match.group(1)):g}%"
    raise ValueError(_("max_failures is a count of items (3) or a percentage ('10%'), not {value!r}").format(
                         value=value))


MaxFailures = Annotated[int | str | None, BeforeValidator(parse_max_failures), WithJsonSchema({
    "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": r"^\d+(\.\d+)?%$"}],
    "description": "map steps: fail the step when more items than this fail (a count or a percentage)"})]


def _plugin_spec(name: str, value: Any) -> Any:
    """A plugin kind's value checked against its model, its errors placed under its key."""
    spec = KINDS[name].spec if name in KINDS else None
    if not (isinstance(spec, type) and issubclass(spec, BaseModel)):
        return value
    try:
        return spec.model_validate(value)
    except ValidationError as exc:
        moved: list[InitErrorDetails] = [
            {"type": e["type"], "loc": (name, *e["loc"]), "input": e["input"],
             **({"ctx": e["ctx"]} if "ctx" in e else {})}  # type: ignore[typeddict-item]
            for e in exc.errors()]
        raise ValidationError.from_exception_data(exc.title, moved) from None


class StepProblem(ValueError):
    """A step that breaks a rule across its fields: its message already names the step."""


def _plugin_kind_schemas(schema: dict[str, Any]) -> None:
    """The JSON Schema of a step lists a plugin kind's key too (its model's own fields; nested models as objects)."""
    for name, kind in KINDS.items():
        if kind not in BUILT_IN:
            spec = kind.spec
            own = spec.model_json_schema() if isinstance(spec, type) and issubclass(spec, BaseModel) else {}
            own.pop("$defs", None)
            schema.setdefault("properties", {})[name] = {**own, "description": kind.description}


class Step(Model):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, json_schema_extra=_plugin_kind_schemas)

    id: StepId
    title: str | None = None
    # kinds — exactly one; each described in runner/dsl/kinds/ (tests/test_step_kinds.py: these fields match it)
    llm: LlmSpec | None = Field(None, description=KINDS["llm"].description)
    agent: AgentSpec | None = Field(None, description=KINDS["agent"].description)
    tool: str | None = Field(None, description=KINDS["tool"].description)
    with_: dict[str, Any] | None = Field(None, alias="with", description="tool or playbook arguments")
    approval: ApprovalSpec | None = Field(None, description=KINDS["approval"].description)
    switch: SwitchSpec | None = Field(None, description=KINDS["switch"].description)
    playbook: str | None = Field(None, description=KINDS["playbook"].description)
    steps: list[Step] | None = Field(None, min_length=1, description=KINDS["steps"].description)
    outputs: dict[str, Any] | None = Field(None, description=(
        "an inline body's result for each item: name: expression of its steps (default: its last step's output)"))
    template: Any = Field(None, description=KINDS["template"].description)
    # modifiers
    map: Any = Field(None, description="list (expression) to fan out over")
    as_: StepId | None = Field(None, alias="as", description="name of the current item (default: item)")
    batch: int | None = Field(None, ge=1, le=500, description="items per LLM call in a map")
    concurrency: int | None = Field(None, ge=1, le=256)
    when: Any = Field(None, description="run only if this expression is true")
    needs: list[str] | None = Field(None, description="explicit dependencies (step ids); default: previous step")
    goto: str | None = Field(None, description="after this step, continue at this step or 'end'")
    retry: Retry | None = None
    timeout: Duration | None = None
    model: str | None = None
    cache: bool | None = Field(None, description="LLM response cache; default on at temperature 0")
    max_visits: int | None = Field(None, ge=1, le=10_000, description="loop guard for goto cycles")
    on_error: OnError = Field("fail", description="fail: stop the run (default); skip: record the error, "
                                                  "null output, go on; {default: value}: use that output; "
                                                  "{goto: step}: continue at an error branch. In a map it "
                                                  "applies per item")
    max_failures: MaxFailures = Field(None, description="map steps: fail the step when more items than this "
                                                        "fail (a count, or a percentage like '10%')")

    # a plugin kind's key and value (the model has no field of its own for it), moved here before the fields are
    # checked, then checked against its kind's model
    kind_plugins: SkipJsonSchema[dict[str, Any]] = Field(default_factory=dict, repr=False, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _take_plugin_kinds(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        found = [name for name, kind in KINDS.items() if kind not in BUILT_IN and name in data]
        if not found:
            return data
        kept = {k: v for k, v in data.items() if k not in found}
        return {**kept, "kind_plugins": {**kept.get("kind_plugins", {}), **{name: data[name] for name in found}}}

    @classmethod
    def extension_fields(cls) -> dict[str, Any]:
        """The keys plugin kinds add (runner.dsl.load reads them to suggest a misspelled one)."""
        return {name: kind.spec for name, kind in KINDS.items() if kind not in BUILT_IN}

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        for name, value in self.kind_plugins.items():
            if name not in KINDS or KINDS[name] in BUILT_IN:  # written as `kind_plugins:` in the file itself
                raise StepProblem(_("step '{step}': unknown field 'kind_plugins'").format(step=self.id))
            self.kind_plugins[name] = _plugin_spec(name, value)
        found = [k for k in KINDS if self._kind_value(k) is not None]
        if len(found) != 1:
            raise StepProblem(_("step '{step}' needs exactly one of {joined} (found: {found})").format(
                                 step=self.id, joined=', '.join(KINDS), found=", ".join(found) or _("none")))
        kind = KINDS[found[0]]
        if self.with_ is not None and not kind.takes_with:
            raise StepProblem(_("step '{step}': 'with' belongs to tool and playbook steps").format(step=self.id))
        if kind.needs_map and self.map is None:
            raise StepProblem(_("step '{step}': an inline body (`steps:`) runs once per item of `map:`; add `map:`, "
                                "or write its steps in the playbook itself").format(step=self.id))
        if self.outputs is not None and self.steps is None:
            raise StepProblem(_("step '{step}': `outputs:` belongs to an inline body (`map:` with `steps:`)").format(
                                  step=self.id))
        if self.map is None and (self.as_ or self.batch or self.concurrency):
            raise StepProblem(_("step '{step}': 'as', 'batch' and 'concurrency' need 'map'").format(
                                 step=self.id))
        if self.batch and self.batch > 1 and not kind.can_batch:
            raise StepProblem(_("step '{step}': 'batch' applies to llm steps only").format(step=self.id))
        if self.map is not None and not kind.can_map:
            raise StepProblem(_("step '{step}': {kind} steps cannot map").format(step=self.id, kind=kind.name))
        if self.on_error != "fail" and not kind.on_error:
            raise StepProblem(_("step '{step}': on_error does not apply to {kind} steps").format(
                                 step=self.id, kind=kind.name))
        if self.max_failures is not None and self.map is None:
            raise StepProblem(_("step '{step}': max_failures bounds the failed items of a map; add `map:` or "
                               "remove it").format(step=self.id))
        if self.goto is not None and kind.routes:
            raise StepProblem(_("step '{step}': a switch routes with its cases; remove 'goto'").format(
                                 step=self.id))
        return self

    def _kind_value(self, name: str) -> Any:
        return getattr(self, name) if name in type(self).model_fields else self.kind_plugins.get(name)

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if self._kind_value(k) is not None)

    @property
    def described(self) -> StepKind:
        """The record of this step's kind: what it allows, routes, pauses, costs (runner/dsl/kinds/)."""
        return KINDS[self.kind]

    @property
    def kind_spec(self) -> Any:
        """The value of this step's kind field (its LlmSpec, tool name, a plugin kind's model …)."""
        return self._kind_value(self.kind)

    @property
    def error_policy(self) -> tuple[str, Any]:
        """('fail' | 'skip' | 'default' | 'goto', the default value or goto target)."""
        if isinstance(self.on_error, OnErrorDefault):
            return "default", self.on_error.default
        if isinstance(self.on_error, OnErrorGoto):
            return "goto", self.on_error.goto
        return self.on_error, None

    @property
    def item_name(self) -> str:
        return self.as_ or "item"


RESERVED.update(name for name, f in Step.model_fields.items() if name not in KINDS)
RESERVED.update(f.alias for f in Step.model_fields.values() if f.alias)


class Trigger(Model):
    cron: str = Field(description="five-field cron expression, e.g. '0 9 * * *' for 09:00 every day")
    timezone: str = "Asia/Shanghai"
    inputs: dict[str, Any] = Field(default_factory=dict)
    catch_up: Literal["once", "skip"] | None = Field(
        None, description="after missed times (scheduler down): 'once' starts one run, 'skip' waits for the "
                          "next time (default: [scheduler] catch_up, 'once')")


class PlaybookSpec(Model):
    name: StepId
    title: str | None = None
    description: str | None = None
    version: int = 1
    inputs: dict[StepId, InputSpec] = Field(default_factory=dict)
    requires: list[Requirement] = Field(default_factory=list, description="conditions on the inputs taken "
                                        "together (at least one source of several); a run that breaks one is "
                                        "refused before it starts, with the message")
    env: list[str] = Field(default_factory=list, description="environment variables readable as env.X")
    secrets: list[str] = Field(default_factory=list, description="environment variables readable as "
                                                                 "secrets.X, never logged")
    defaults: Defaults = Field(default_factory=Defaults)
    limits: Limits = Field(default_factory=Limits)
    triggers: list[Trigger] = Field(default_factory=list)
    steps: list[Step] = Field(min_length=1)
    outputs: dict[str, Any] = Field(default_factory=dict, description=(
        "name: value (an expression or a literal); or name: {value: ..., title: 主题} to label it where a person "
        "reads it (the console, runs show, the run page)"))

    @property
    def output_values(self) -> dict[str, Any]:
        """The outputs to evaluate: a titled output's `value`, others as written."""
        return {name: value["value"] if titled(value) else value for name, value in self.outputs.items()}

    @property
    def output_titles(self) -> dict[str, str]:
        return {name: str(value.get("title") or value.get("description")) for name, value in self.outputs.items()
                if titled(value)}


def titled(output: Any) -> bool:
    """An output written `{value: …, title: …}` (and/or `description:`), the form GitHub Actions uses."""
    return isinstance(output, dict) and "value" in output and len(output) > 1 and \
        set(output) <= {"value", "title", "description"}
