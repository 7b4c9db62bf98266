"""The playbook DSL v1 as pydantic models — the single source of validation, JSON Schema and docs."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from runner.dsl.llm_spec import LlmSpec
from runner.i18n import _

STEP_KINDS = ("llm", "tool", "agent", "approval", "switch", "playbook", "template", "steps")
ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """'90s', '5m', '24h', '1d' or a number of seconds → seconds."""
    if isinstance(value, bool):
        raise ValueError(_("a duration is a number of seconds or a string like '60s', '5m', '24h'"))
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(_("'{value}' is not a duration; write it like '60s', '5m', '24h' or '1d'").format(
                             value=value))
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema({
    "anyOf": [{"type": "number"}, {"type": "string", "pattern": _DURATION.pattern}],
    "description": "seconds, or a string like '60s', '5m', '24h', '1d'"})]
StepId = Annotated[str, Field(pattern=ID_PATTERN)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


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


class AgentSpec(Model):
    system: str | None = Field(None, description="system message (template)")
    prompt: str = Field(description="the task (template)")
    tools: list[str] = Field(min_length=1, description="tools the model may call, e.g. [web.fetch, feed.read]")
    max_turns: int = Field(8, ge=1, le=50, description="model turns at most (each may call several tools)")
    output: dict[str, Any] | list[Any] | str | None = Field(None, description="schema of the final answer")
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1)


class ApprovalSpec(Model):
    title: str = Field(description="what the reviewer is asked to approve")
    show: Any = Field(None, description="the draft shown to the reviewer (template or value)")
    instructions: str | None = None
    editable: list[str] = Field(default_factory=list, description="fields of the draft the reviewer "
                                                                  "may change")
    on_reject: StepId | None = Field(None, description="step to re-run with ${{ approval.comment }}")
    sources: Any = Field(None, description="the passages the draft may cite (template; kb.search's passages: each "
                                           "with `cite` and `text`): each is shown beside the draft's values that "
                                           "name its cite, on the approval page and in the console")
    timeout: Duration | None = None
    on_timeout: Literal["approve", "reject", "fail"] = "fail"


class SwitchCase(Model):
    if_: str = Field(alias="if", description="condition expression")
    goto: str = Field(description="step id, or 'end'")


class SwitchSpec(Model):
    cases: list[SwitchCase] = Field(min_length=1)
    default: str | None = Field(None, description="step id or 'end'; omitted: the next step")


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


class StepProblem(ValueError):
    """A step that breaks a rule across its fields: its message already names the step."""


class Step(Model):
    id: StepId
    title: str | None = None
    # kinds — exactly one
    llm: LlmSpec | None = None
    agent: AgentSpec | None = None
    tool: str | None = Field(None, description="tool name, e.g. sheet.read")
    with_: dict[str, Any] | None = Field(None, alias="with", description="tool or playbook arguments")
    approval: ApprovalSpec | None = None
    switch: SwitchSpec | None = None
    playbook: str | None = Field(None, description="path of a sub-playbook, relative to this file")
    steps: list[Step] | None = Field(None, min_length=1, description=(
        "an inline map body: these steps run for each item of `map:`, reading the item (`item` or the `as:` name), "
        "the playbook's inputs and the values given in `with:`"))
    outputs: dict[str, Any] | None = Field(None, description=(
        "an inline body's result for each item: name: expression of its steps (default: its last step's output)"))
    template: Any = Field(None, description=(
        "a value computed with no LLM or tool call: one `${{ }}` expression (its value kept: a list stays a list), "
        "a multi-line text with expressions, or a mapping or list whose texts are rendered"))
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

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = [k for k in STEP_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            found = ", ".join(kinds) if kinds else _("none")
            raise StepProblem(_("step '{step}' needs exactly one of {joined} (found: {found})").format(
                                 step=self.id, joined=', '.join(STEP_KINDS), found=found))
        if self.with_ is not None and self.kind not in ("tool", "playbook", "steps"):
            raise StepProblem(_("step '{step}': 'with' belongs to tool and playbook steps").format(step=self.id))
        if self.steps is not None and self.map is None:
            raise StepProblem(_("step '{step}': an inline body (`steps:`) runs once per item of `map:`; add `map:`, "
                                "or write its steps in the playbook itself").format(step=self.id))
        if self.outputs is not None and self.steps is None:
            raise StepProblem(_("step '{step}': `outputs:` belongs to an inline body (`map:` with `steps:`)").format(
                                  step=self.id))
        if self.map is None and (self.as_ or self.batch or self.concurrency):
            raise StepProblem(_("step '{step}': 'as', 'batch' and 'concurrency' need 'map'").format(
                                 step=self.id))
        if self.batch and self.batch > 1 and self.kind != "llm":
            raise StepProblem(_("step '{step}': 'batch' applies to llm steps only").format(step=self.id))
        if self.map is not None and self.kind in ("approval", "switch"):
            raise StepProblem(_("step '{step}': {kind} steps cannot map").format(step=self.id, kind=self.kind))
        if self.on_error != "fail" and self.kind in ("approval", "switch"):
            raise StepProblem(_("step '{step}': on_error does not apply to {kind} steps").format(
                                 step=self.id, kind=self.kind))
        if self.max_failures is not None and self.map is None:
            raise StepProblem(_("step '{step}': max_failures bounds the failed items of a map; add `map:` or "
                               "remove it").format(step=self.id))
        if self.goto is not None and self.kind == "switch":
            raise StepProblem(_("step '{step}': a switch routes with its cases; remove 'goto'").format(
                                 step=self.id))
        return self

    @property
    def kind(self) -> str:
        return next(k for k in STEP_KINDS if getattr(self, k) is not None)

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
