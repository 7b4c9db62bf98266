"""Checks made before a run exists, whatever starts it (the CLI, the web page and API, the scheduler, evals): the
inputs against their declared types, each file input opened the way the tools that read it will, and the model
aliases the playbook calls. A mistake found here is fixed in the inputs or the project, not by a resume: no run is
created and nothing is spent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from runner.config import LOCAL, Project
from runner.dsl.inputs import input_file, resolve_inputs
from runner.dsl.templates import TemplateError, is_template, lone_expression, render
from runner.dsl.validate import Playbook
from runner.errors import Diagnostic, PlaybookValidationError, did_you_mean
from runner.i18n import _
from runner.registry import NOT_KNOWN_YET, ToolArgumentError, get_file_check, tool_names


def prepare_inputs(playbook: Playbook, given: dict[str, Any], project: Project, *, file: str) -> dict[str, Any]:
    """The run's inputs, or PlaybookValidationError (exit 2) naming every problem: a missing or mistyped input, a
    file the tools cannot read, a model alias the project does not define."""
    values = resolve_inputs(playbook.spec, given, file=file, base_dir=playbook.path.parent)
    problems = [Diagnostic(file, 0, 0, p) for p in file_problems(playbook, values)]
    problems += model_problems(playbook, project)
    problems += kb_problems(playbook, project, values)
    if problems:
        raise PlaybookValidationError(problems)
    return values


def file_problems(playbook: Playbook, values: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for name, spec in playbook.spec.inputs.items():
        if spec.type != "file" or not values.get(name):
            continue
        given = str(values[name])
        path = input_file(given, playbook.path.parent)
        if path.is_dir():
            problems.append(_("input '{name}': '{given}' is a folder; give a file").format(
                                name=name, given=given))
            continue
        try:
            path.open("rb").close()
        except OSError as exc:
            problems.append(_("input '{name}': cannot read '{given}': {strerror}").format(
                                name=name, given=given, strerror=exc.strerror))
            continue
        for step, tool, argument, args in readers(playbook, name, values):
            check = get_file_check(tool, argument)
            if check is None:
                continue
            try:
                check(path, args)
            except ToolArgumentError as exc:
                problems.append(_("input '{name}' (read by {tool} in step '{step}'): {exc}").format(
                                    name=name, tool=tool, step=step, exc=exc))
    return list(dict.fromkeys(problems))


def readers(playbook: Playbook, name: str,
            values: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(step, tool, argument, the step's arguments known before the run: constants, and templates of the inputs
    alone rendered with `values`) for each tool step given input `name` whole as an argument — in sub-playbooks
    too, through the inputs they are given (whose values are not known here)."""
    for step in playbook.spec.steps:
        for argument, value in (step.with_ or {}).items():
            if not (isinstance(value, str) and lone_expression(value) == f"inputs.{name}"):
                continue
            if step.tool is not None and step.tool in tool_names():
                yield step.id, step.tool, argument, _known_arguments(step.with_ or {}, values)
            elif step.playbook is not None and (child := playbook.children.get(step.id)) is not None:
                yield from readers(child, argument, {})


def _known_arguments(arguments: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """`names: ${{ inputs.names or none }}` is known before the run; `rows: ${{ steps.load.rows }}` is not."""
    known = {}
    for key, value in arguments.items():
        if not is_template(value):
            known[key] = value
            continue
        try:
            known[key] = render(value, {"inputs": values}, seconds=1.0)
        except TemplateError:
            known[key] = NOT_KNOWN_YET  # it needs what the run computes: the check must not guess it
    return known


def model_problems(playbook: Playbook, project: Project) -> list[Diagnostic]:
    """A model alias neither defined in playbook.toml nor a provider's model id: today the call would fail at the
    step, after the steps before it were paid for."""
    spec = playbook.spec
    known = {*project.settings.models, "default", LOCAL}
    found = []
    for i, step in enumerate(spec.steps):
        if step.llm is None and step.agent is None:
            continue
        alias = step.model or spec.defaults.model
        if alias in known or "/" in alias or _provider_model(alias):
            continue
        where = ("steps", i, "model") if step.model else ("defaults", "model")
        found.append(playbook.loaded.source.diag(
            where, _("step '{step}': model '{alias}' is not defined in playbook.toml{hint}; add a [models.{alias}] "
                     "section (model = \"provider/name\"), or use a defined alias").format(
                       step=step.id, alias=alias, hint=did_you_mean(alias, known))))
    found += _vision_problems(playbook, project)
    for child in playbook.children.values():
        found += model_problems(child, project)
    return found


def kb_problems(playbook: Playbook, project: Project, values: dict[str, Any] | None = None) -> list[Diagnostic]:
    """A kb.search of a knowledge base that does not exist or holds nothing: today the step would fail after the
    steps before it were paid for. The name is checked when it is written in the step, or is an input whose value
    (`values`; at validate, its default) is known."""
    from runner.kb.dense import mismatch
    from runner.kb.index import KnowledgeBaseError, kb_root, manifest

    root = kb_root(project.root, project.settings)
    found = []
    for i, step in enumerate(playbook.spec.steps):
        if step.tool != "kb.search" or not isinstance(step.with_, dict):
            continue
        name = step.with_.get("kb")
        expression = lone_expression(name) if isinstance(name, str) else None
        if expression is not None and expression.startswith("inputs.") and expression.count(".") == 1:
            given = (values or {}).get(expression[7:]) if values is not None else \
                getattr(playbook.spec.inputs.get(expression[7:]), "default", None)
            name = given if isinstance(given, str) and given else None
        if not isinstance(name, str) or is_template(name):
            continue
        problem = None
        try:
            data = manifest(root, name)
            if data["chunks"] == 0:
                problem = _("kb '{name}' holds no passage: playbook kb add {name} FOLDER with documents that have "
                            "text").format(name=name)
            else:  # vectors of another model than [models.embed] would fail at the first search
                problem = mismatch(name, (data.get("dense") or {}).get("model"), project.settings)
        except KnowledgeBaseError as exc:
            problem = str(exc)
        if problem:
            found.append(playbook.loaded.source.diag(("steps", i, "with", "kb"), _("step '{step}': {problem}").format(
                step=step.id, problem=problem)))
    for step in playbook.spec.steps:  # an inline map body reads the playbook's inputs; a sub-playbook has its own
        if step.id in playbook.children:
            found += kb_problems(playbook.children[step.id], project, values if step.steps is not None else None)
    return found


def _vision_problems(playbook: Playbook, project: Project) -> list[Diagnostic]:
    """Images sent to a model that takes none fail at the provider (or are silently dropped), after the steps
    before were paid for."""
    from runner.models.model_table import facts

    found = []
    for i, step in enumerate(playbook.spec.steps):
        if step.llm is None or step.llm.images is None:
            continue
        alias = step.model or playbook.spec.defaults.model
        config = project.resolve_model(alias)[1]
        takes_images = config.vision if config.vision is not None else (
            config.model != LOCAL and facts(config.model).supports_vision)
        if not takes_images:
            shown = _("the embedded model") if config.model == LOCAL else config.model
            found.append(playbook.loaded.source.diag(("steps", i, "llm", "images"), _(
                "step '{step}' sends images, but model '{alias}' ({model}) does not take images; use a "
                "vision-capable model, or set `vision = true` under [models.{alias}] in playbook.toml if it does"
            ).format(step=step.id, alias=alias, model=shown)))
    return found


def _provider_model(name: str) -> bool:
    """A bare model name litellm knows (`gpt-4o-mini`)."""
    from runner.models.model_table import load

    return name in load()

