"""Read an eval suite: YAML with line:column marks → `SuiteSpec`, dataset rows → cases, every reference checked
against the playbook under test, each problem reported as `file:line:col`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic

from runner.dsl.load import model_check
from runner.dsl.validate import Playbook, load_and_validate
from runner.dsl.yaml_loader import SourceMap, load_yaml
from runner.errors import Diagnostic, LoadError, PlaybookError, did_you_mean
from runner.evals.paths import PathSyntaxError, parse_path
from runner.evals.suite import CaseSpec, Dataset, SuiteSpec
from runner.evals.variants import variant_cases, variant_playbooks
from runner.i18n import _
from runner.messages import merged
from runner.registry import tool_names


class SuiteError(PlaybookError):
    """The suite file, its dataset or its references are wrong. Exit code 2."""


@dataclass
class Suite:
    spec: SuiteSpec
    path: Path
    name: str
    playbook: Playbook
    cases: list[CaseSpec]
    source: SourceMap
    variants: dict[str, Playbook] = field(default_factory=dict)  # `<step>=<variant>` → the playbook so changed
    variant_of: dict[str, str] = field(default_factory=dict)  # case id → the variant it runs

    def playbook_of(self, case: CaseSpec) -> Playbook:
        """The playbook a case runs: the variant it names, else the one under test."""
        key = self.variant_of.get(case.id)
        return self.variants[key] if key is not None else self.playbook

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def cassette_path(self) -> Path:
        return self.folder / "cassettes" / f"{self.name}.yaml"

    @property
    def baseline_path(self) -> Path:
        return self.folder / "baselines" / f"{self.name}.json"


def load_suite(path: str | Path) -> Suite:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError([Diagnostic(str(path), 0, 0, _("cannot read the suite: {exc}").format(exc=exc))]) from None
    try:
        data, source = load_yaml(text, str(path))
        if not isinstance(data, dict):
            raise SuiteError([source.diag((), _("a suite is a mapping with `playbook` and `cases`"))])
        spec = model_check(SuiteSpec, data, source)
    except LoadError as exc:
        raise SuiteError(exc.diagnostics) from None
    playbook_path = (file.parent / spec.playbook).resolve()
    try:
        playbook = load_and_validate(playbook_path)
    except PlaybookError as exc:
        where = source.diag(("playbook",), _("the playbook under test does not load: {name}").format(
                                               name=exc.diagnostics[0]))
        raise SuiteError([where, *exc.diagnostics[1:]]) from None
    cases = list(spec.cases)
    if spec.dataset is not None:
        cases += _dataset_cases(spec.dataset, file.parent, source)
    suite = Suite(spec, file, spec.name or file.stem, playbook, [_merge(spec, c) for c in cases], source)
    problems = _check_references(suite, data)
    suite.variants, wrong = variant_playbooks(playbook, spec.variants, source)
    problems += wrong
    if problems:
        raise SuiteError(problems)
    suite.cases, suite.variant_of = variant_cases(suite.cases, list(suite.variants))
    return suite


def _merge(spec: SuiteSpec, case: CaseSpec) -> CaseSpec:
    d = spec.defaults
    return case.model_copy(update={
        "inputs": {**d.inputs, **case.inputs}, "fixtures": [*case.fixtures, *d.fixtures],
        "approvals": [*case.approvals, *d.approvals], "assert_": [*d.assert_, *case.assert_],
        "threshold": case.threshold if case.threshold is not None else spec.threshold})


def _check_references(suite: Suite, data: dict[str, Any]) -> list[Diagnostic]:
    """Assertion paths, approval steps, fixture tools and case ids must name real things."""
    source, spec = suite.source, suite.playbook.spec
    steps = {s.id: s for s in spec.steps}
    approvals = [s.id for s in spec.steps if s.described.pauses]
    tools = tool_names()
    problems: list[Diagnostic] = []
    seen: set[str] = set()
    for where, case in _case_locations(suite, data):
        if case.id in seen and where[0] == "cases":
            problems.append(source.diag((*where, "id"), _("case id '{case}' is used twice").format(case=case.id)))
        seen.add(case.id)
    blocks = [(("defaults",), data.get("defaults") or {})] + [
        (("cases", i), raw) for i, raw in enumerate(data.get("cases") or []) if isinstance(raw, dict)]
    for where, raw in blocks:
        for j, item in enumerate(raw.get("assert") or []):
            that = item.get("that", "outputs") if isinstance(item, dict) else "outputs"
            problems += _check_path(source, (*where, "assert", j), that, steps)
            reached = item.get("approval_reached") if isinstance(item, dict) else None
            if reached is not None and reached not in approvals:
                problems.append(source.diag((*where, "assert", j, "approval_reached"),
                                            _("'{reached}' is not an approval step of {name}{hint}").format(
                                                reached=reached, name=spec.name,
                                                hint=did_you_mean(str(reached), approvals))))
            if isinstance(item, dict) and "judge" in item and not suite.spec.judge_model:
                problems.append(source.diag((*where, "assert", j, "judge"),
                                            _("a judge assertion needs a pinned `judge_model:` at the top of the "
                                              "suite")))
            if isinstance(item, dict) and isinstance(item.get("python"), str):
                problem = _importable(item["python"], suite.folder)
                if problem:
                    problems.append(source.diag((*where, "assert", j, "python"), problem))
        for j, item in enumerate(raw.get("approvals") or []):
            step = item.get("step") if isinstance(item, dict) else None
            if step not in approvals:
                problems.append(source.diag((*where, "approvals", j, "step"),
                                            _("'{step}' is not an approval step of {name}{hint}").format(
                                                step=step, name=spec.name, hint=did_you_mean(str(step), approvals))))
        for j, item in enumerate(raw.get("fixtures") or []):
            tool = item.get("tool") if isinstance(item, dict) else None
            if tool not in tools:
                problems.append(source.diag((*where, "fixtures", j, "tool"),
                                            _("unknown tool '{tool}'{hint}").format(
                                                tool=tool, hint=did_you_mean(str(tool), tools))))
            for key in ("page", "output_file"):
                named = item.get(key) if isinstance(item, dict) else None
                if named is not None and not (suite.folder / str(named)).is_file():
                    problems.append(source.diag((*where, "fixtures", j, key),
                                                _("no file '{named}' relative to the suite ({folder})").format(
                                                    named=named, folder=suite.folder)))
    return problems


def _importable(target: str, folder: Path) -> str | None:
    """Why `module:function` cannot be called, or None. Modules import from the suite's folder."""
    import importlib
    import sys

    module_name, _colon, function_name = target.partition(":")
    if not module_name or not function_name:
        return _("'{target}': write module:function, e.g. checks:budget_adds_up").format(target=target)
    if str(folder.resolve()) not in sys.path:
        sys.path.insert(0, str(folder.resolve()))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module: any error in it is theirs to see, not a crash of ours
        return _("cannot import '{module_name}' (from {folder}): {reason}: {exc}").format(
                   module_name=module_name, folder=folder, reason=type(exc).__name__, exc=exc)
    if not callable(getattr(module, function_name, None)):
        names = [n for n in dir(module) if callable(getattr(module, n)) and not n.startswith("_")]
        return _("'{module_name}' has no function '{function_name}'{hint}").format(
                   module_name=module_name, function_name=function_name, hint=did_you_mean(function_name, names))
    return None


def _case_locations(suite: Suite, data: dict[str, Any]) -> list[tuple[tuple[Any, ...], CaseSpec]]:
    inline = len(data.get("cases") or [])
    return [(("cases", i) if i < inline else ("dataset",), c) for i, c in enumerate(suite.cases)]


def _check_path(source: SourceMap, where: tuple[Any, ...], that: Any, steps: dict[str, Any]) -> list[Diagnostic]:
    try:
        parts = parse_path(str(that))
    except PathSyntaxError as exc:
        return [source.diag((*where, "that"), _("bad path '{that}': {exc}").format(that=that, exc=exc))]
    if parts[0] in ("steps", "approvals") and len(parts) > 1 and parts[1] not in steps:
        return [source.diag((*where, "that"), _("no step '{name}' in the playbook{hint}").format(
                                                  name=parts[1], hint=did_you_mean(str(parts[1]), steps)))]
    return []


def _dataset_cases(dataset: Dataset, folder: Path, source: SourceMap) -> list[CaseSpec]:
    file = folder / dataset.file
    shown = str(file)
    if not file.is_file():
        raise SuiteError([source.diag(("dataset", "file"), _("no dataset file '{file}' next to the suite").format(
                                                               file=dataset.file))])
    rows, lines = _read_rows(file, dataset.sheet)
    if dataset.limit:
        rows = rows[: dataset.limit]
    cases = []
    for number, row in zip(lines, rows, strict=False):
        fields: dict[str, Any] = {"inputs": {}, "vars": {}}
        for target, column in dataset.columns.items():
            if column not in row:
                shown_cols = ", ".join(map(str, row))
                raise SuiteError([source.diag(("dataset", "columns", target),
                                              _("column '{column}' is not in {shown} (columns: {shown_cols})").format(
                                                  column=column, shown=shown, shown_cols=shown_cols))])
            value = _cell(row[column])
            head, _dot, rest = target.partition(".")
            if head in ("inputs", "vars") and rest:
                fields[head][rest] = value
            elif target in ("id", "description"):
                fields[target] = str(value)
            else:
                raise SuiteError([source.diag(("dataset", "columns", target),
                                              _("'{target}': map columns to id, description, inputs.<name> or "
                                                "vars.<name>").format(target=target))])
        fields.setdefault("id", f"row{number}")
        try:
            cases.append(CaseSpec.model_validate(fields))
        except pydantic.ValidationError as exc:
            columns = {target: column for target, column in dataset.columns.items()}
            problems = "; ".join(_("column '{value}' ({where}): {message}").format(
                                     value=columns.get(where, where), where=where, message=message)
                                 for where, message in merged(exc.errors())[:3])
            raise SuiteError([Diagnostic(shown, number, 0, _("row {number}: {problems}").format(
                                                               number=number, problems=problems))]) from None
    return cases


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _read_rows(file: Path, sheet: str | None) -> tuple[list[dict[str, Any]], list[int]]:
    """A dataset's rows and the line each starts on, read as `sheet.read` reads a table (any separator, GBK,
    gzip, a title line above the header, quoted cells over several lines)."""
    from runner.registry import ToolArgumentError
    from runner.tables import Shape, read_table

    try:
        table = read_table(file, file.name, Shape(sheet=sheet))
    except ToolArgumentError as exc:
        raise SuiteError([Diagnostic(str(file), 0, 0, str(exc))]) from None
    return table.rows, list(table.lines)
