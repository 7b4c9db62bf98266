"""What every phase knows of a step kind, in one record: the model of its field, what it allows beside it (`map`,
`batch`, `with`, `on_error`, `goto`), how it routes or pauses, which of its texts are templates, its own checks.
The spec, validate, lint, references and the engine read these flags instead of naming kinds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

Path = tuple[Any, ...]
# (path under the step, the value, whether it may read the map's item)
Text = tuple[Path, Any, bool]


class StepLike(Protocol):
    """The fields of a step a kind's texts and checks read beside its own (runner/dsl/spec.py Step)."""

    id: str
    map: Any
    batch: int | None
    with_: dict[str, Any] | None

    @property
    def item_name(self) -> str: ...


class KindChecker(Protocol):
    """What validate gives a kind's own check (runner/dsl/validate.py): where to report, and the shared checks."""

    def error(self, path: Path, message: str, *, key: bool = False) -> None: ...

    def check_output(self, i: int, step: Any, kind: str, output: Any) -> None: ...

    def check_child(self, i: int, step: Any) -> None: ...

    def check_body(self, i: int, step: Any) -> None: ...


def no_texts(step: Any, spec: Any) -> Iterator[Text]:
    return iter(())


@dataclass(frozen=True)
class StepKind:
    name: str  # the step's field that holds it: `llm:`, `tool:` …
    spec: Any  # the type of that field (a pydantic model, `str`, …), for the Step model and the JSON Schema
    word: str  # how a progress line names it (a msgid, translated by runner.wording)
    description: str  # the field's description in the JSON Schema
    takes_with: bool = False  # `with:` gives it arguments
    can_map: bool = True  # it may run once per item of `map:`
    needs_map: bool = False  # it only runs per item (an inline body)
    can_batch: bool = False  # several map items may go in one call (`batch:`)
    on_error: bool = True  # `on_error:` applies
    routes: bool = False  # it picks the next step itself (so no `goto:`)
    pauses: bool = False  # it waits for a person
    calls_model: bool = False  # an LLM answers it: its output is text unless it has an `output:` schema
    billed: bool = False  # running it may cost money: a cancel is checked before each of its items
    runs_steps: bool = False  # it runs steps of its own (a sub-playbook, an inline body): a trace groups them
    # the texts rendered when it runs: template checks and the foreign-syntax lint read them
    texts: Callable[[Any, Any], Iterator[Text]] = no_texts
    # checks of its own beyond its field's type: (checker, step index, step, the kind's spec)
    check: Callable[[KindChecker, int, Any, Any], None] | None = None
    # a plugin kind's executor (runner.engine.nodes ItemExecutor: `async (ctx, item, *, with_item) -> output`);
    # the built-in kinds' are registered with `@step_kind` under runner/engine/nodes/
    executor: Any = None
