"""The eval suite DSL (`evals/<name>.yaml`): pydantic models that validate suites and give their JSON Schema."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from runner.config import ModelConfig
from runner.i18n import _

CHECKS = ("equals", "contains", "not_contains", "regex", "json_schema", "min", "max", "length", "overlap",
          "approval_reached", "python", "judge")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Bounds(_Strict):
    min: float | None = None
    max: float | None = None


class Overlap(_Strict):
    expected: list[Any] | str = Field(description="expected labels, or `${{ vars.x }}` from the dataset")
    min_recall: float | None = Field(None, ge=0, le=1, description="share of expected labels that appear")
    min_precision: float | None = Field(None, ge=0, le=1, description="share of found labels that were expected")
    min_jaccard: float | None = Field(None, ge=0, le=1)

    @model_validator(mode="after")
    def _one_bound(self) -> Overlap:
        if self.min_recall is None and self.min_precision is None and self.min_jaccard is None:
            self.min_recall = 1.0
        return self


class Judge(_Strict):
    rubric: str = Field(description="what a good answer does; the judge scores 0–10 against it")
    min_score: int = Field(7, ge=0, le=10, description="pass at this score or above")


class Assertion(_Strict):
    """One check on one value. `that` is a path: `outputs.x`, `steps.<id>.output.a[0].b`, `steps.<id>.output[*].x`
    (every item: each must pass), `steps.<id>.visits[0].output` (an earlier visit of a loop), `steps.<id>.cost`,
    `run.cost`, `run.seconds`, `run.tokens`, `run.status`, `approvals.<step>`."""

    that: str = Field("outputs", description="path of the value to check")
    name: str | None = Field(None, description="shown in reports; default: the check and the path")
    weight: float = Field(1.0, ge=0, description="share of the case score")
    equals: Any = None
    contains: Any = None
    not_contains: Any = None
    regex: str | None = None
    json_schema: dict[str, Any] | None = None
    min: float | None = Field(None, description="numeric lower bound (with or without max)")
    max: float | None = Field(None, description="numeric upper bound")
    length: Bounds | None = Field(None, description="bounds on the length of a text or list")
    overlap: Overlap | None = None
    approval_reached: str | None = Field(None, description="id of an approval step that must have asked")
    python: str | None = Field(None, description="`module:function(value, case) -> bool | float | (bool, reason)`")
    judge: Judge | None = None

    @model_validator(mode="after")
    def _one_check(self) -> Assertion:
        given = [c for c in CHECKS if c in self.model_fields_set]
        bounds = {"min", "max"}
        if not given:
            raise ValueError(_("an assertion needs one check: {joined}").format(joined=', '.join(CHECKS)))
        if len(given) > 1 and not set(given) <= bounds:
            raise ValueError(_("one check per assertion, got {joined}; split it into several").format(
                                 joined=', '.join(given)))
        return self

    @property
    def check(self) -> str:
        given = [c for c in CHECKS if c in self.model_fields_set]
        return "bounds" if set(given) <= {"min", "max"} else given[0]

    @property
    def label(self) -> str:
        if self.approval_reached is not None:
            return self.name or f"approval '{self.approval_reached}' reached"
        return self.name or f"{self.check} {self.that}"


class Fixture(_Strict):
    """Stands in for a tool. `page` serves a recorded file on loopback and points the call's `url` at it; `args`
    overrides arguments (a fixture sheet); `output` / `output_file` answer without calling the tool."""

    tool: str = Field(description="tool name, e.g. web.fetch")
    step: str | None = Field(None, description="only calls from this step")
    match: dict[str, Any] = Field(default_factory=dict, description="only calls whose arguments include these")
    page: str | None = Field(None, description="file served on loopback as the `url` argument")
    args: dict[str, Any] = Field(default_factory=dict)
    output: Any = None
    output_file: str | None = Field(None, description="a recorded output (JSON or YAML file, relative to the suite)")

    @model_validator(mode="after")
    def _one_action(self) -> Fixture:
        actions = [a for a in ("page", "args", "output", "output_file") if a in self.model_fields_set]
        if len(actions) != 1:
            raise ValueError(_("a fixture does one thing: page, args, output or output_file"))
        return self


class ScriptedDecision(_Strict):
    """What the reviewer does when the run waits at `step`. Decisions for one step are used in order."""

    step: str
    action: Literal["approve", "reject"] = "approve"
    comment: str | None = None
    edits: dict[str, Any] = Field(default_factory=dict)
    by: str = "eval"


class CaseSpec(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_\-.一-鿿]+$")
    description: str = ""
    inputs: dict[str, Any] = Field(default_factory=dict)
    vars: dict[str, Any] = Field(default_factory=dict, description="values assertions use as `${{ vars.x }}`")
    fixtures: list[Fixture] = Field(default_factory=list)
    approvals: list[ScriptedDecision] = Field(default_factory=list)
    assert_: list[Assertion] = Field(default_factory=list, alias="assert")
    threshold: float | None = Field(None, ge=0, le=1, description="pass at this weighted score (default: suite)")
    expect_status: Literal["done", "failed"] = Field("done", description="`failed` for a case that checks a guard "
                                                                         "stops the run (assert on run.error)")


class Dataset(_Strict):
    """Cases from a file: each row is a case. `columns` maps case fields (`id`, `inputs.<name>`, `vars.<name>`)
    to column names; cells that hold JSON (a list, an object) are parsed."""

    file: str = Field(description="csv, jsonl or xlsx, relative to the suite")
    sheet: str | None = None
    columns: dict[str, str] = Field(description="case field → column, e.g. {id: 编号, inputs.text: 评论}")
    limit: int | None = Field(None, ge=1)


class Repeat(_Strict):
    n: int = Field(1, ge=1, description="runs per case")
    k: int | None = Field(None, ge=1, description="a case passes if at least k of n runs pass (default: n)")


class CaseDefaults(_Strict):
    inputs: dict[str, Any] = Field(default_factory=dict)
    fixtures: list[Fixture] = Field(default_factory=list)
    approvals: list[ScriptedDecision] = Field(default_factory=list)
    assert_: list[Assertion] = Field(default_factory=list, alias="assert")


class FakeLlm(_Strict):
    """Answer every model alias from the fake OpenAI-compatible server with this script (live runs and --record),
    so a suite's cassette can be recorded with no key; `--real-models` ignores it."""

    script: str = Field(description="rules file (runner.testing.load_script format), relative to the suite")
    input_price: float | None = Field(None, description="per million input tokens, so cost bounds mean something")
    output_price: float | None = Field(None, description="per million output tokens")


class Variant(_Strict):
    """One version of an llm step to compare: its name and what it changes (the rest as the playbook writes it)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_\-.一-鿿]+$", description="shown in reports, e.g. v1 or shorter")
    model: str | None = Field(None, description="another model alias for this step")
    system: str | None = None
    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    temperature: float | str | None = None
    top_p: float | str | None = None
    max_tokens: int | str | None = None
    presence_penalty: float | str | None = None
    frequency_penalty: float | str | None = None
    seed: int | str | None = None
    stop: str | list[str] | None = None

    @property
    def changes(self) -> dict[str, Any]:
        """The llm fields this variant sets."""
        return {k: v for k, v in self.model_dump(exclude={"name", "model"}, exclude_none=True).items()}


class SuiteSpec(_Strict):
    name: str | None = Field(None, description="default: the file name")
    description: str = ""
    playbook: str = Field(description="the playbook under test, relative to the suite")
    models: dict[str, ModelConfig] = Field(default_factory=dict, description="model alias overrides for this suite")
    fake_llm: FakeLlm | None = Field(None, description="record against the fake server instead of real models")
    judge_model: str | None = Field(None, description="pinned judge: an alias or a litellm model id; required "
                                                      "when any assertion uses `judge`")
    concurrency: int = Field(4, ge=1, description="cases run at once")
    repeat: Repeat = Field(default_factory=Repeat)
    threshold: float = Field(1.0, ge=0, le=1, description="a run passes at this weighted score")
    defaults: CaseDefaults = Field(default_factory=CaseDefaults, description="merged into every case")
    dataset: Dataset | None = None
    knowledge: dict[str, str] = Field(default_factory=dict, description=(
        "knowledge bases every case's project has (for kb.search): name → folder of documents, relative to the "
        "suite; indexed once per eval run"))
    cases: list[CaseSpec] = Field(default_factory=list)
    variants: dict[str, list[Variant]] = Field(default_factory=dict, description=(
        "versions of llm steps to compare, as Prompt Flow's node variants: step id → [{name, prompt, system, "
        "model, temperature, …}]; every case runs once per variant (the other steps as written), reported side "
        "by side as `<case>@<step>=<variant>`"))

    @model_validator(mode="after")
    def _has_cases(self) -> SuiteSpec:
        if not self.cases and self.dataset is None:
            raise ValueError(_("a suite needs `cases`, a `dataset`, or both"))
        return self


def suite_json_schema() -> dict[str, Any]:
    schema = SuiteSpec.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "playbook runner eval suite"
    return schema
