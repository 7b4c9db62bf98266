"""Prompt variants in a suite: each variant of an llm step is the playbook with that step changed, validated like
any playbook; every case runs once per variant, as `<case>@<step>=<variant>`. Pure but for reading the playbook."""

from __future__ import annotations

from typing import Any

import yaml

from runner.dsl.load import load_playbook
from runner.dsl.validate import Playbook, validate
from runner.dsl.yaml_loader import SourceMap
from runner.errors import Diagnostic, PlaybookError
from runner.evals.suite import CaseSpec, Variant
from runner.i18n import _

SEPARATOR = "@"


def variant_key(step: str, variant: str) -> str:
    return f"{step}={variant}"


def variant_playbooks(playbook: Playbook, variants: dict[str, list[Variant]],
                      source: SourceMap) -> tuple[dict[str, Playbook], list[Diagnostic]]:
    """`<step>=<variant>` → the playbook with that step changed; and what is wrong with any of them."""
    found: dict[str, Playbook] = {}
    problems: list[Diagnostic] = []
    data = yaml.safe_load(playbook.loaded.text)
    ids = [s.id for s in playbook.spec.steps]
    for step_id, versions in variants.items():
        where = ("variants", step_id)
        if step_id not in ids or playbook.step(step_id).llm is None:
            problems.append(source.diag(where, _("'{step}' is not an llm step of {name} (llm steps: {steps})").format(
                step=step_id, name=playbook.spec.name,
                steps=", ".join(s.id for s in playbook.spec.steps if s.llm is not None) or _("none")), key=True))
            continue
        names = [v.name for v in versions]
        for j, version in enumerate(versions):
            if names.count(version.name) > 1:
                problems.append(source.diag((*where, j, "name"), _("variant '{name}' is named twice").format(
                                                                    name=version.name)))
                continue
            try:
                found[variant_key(step_id, version.name)] = _changed(playbook, data, step_id, version)
            except PlaybookError as exc:
                reasons = "; ".join(d.message for d in exc.diagnostics[:3])
                problems.append(source.diag((*where, j), _("variant '{name}' of step '{step}' does not validate: "
                                                           "{reasons}").format(name=version.name, step=step_id,
                                                                               reasons=reasons)))
    return found, problems


def _changed(playbook: Playbook, data: dict[str, Any], step_id: str, version: Variant) -> Playbook:
    steps = [dict(step) for step in data["steps"]]
    i = next(j for j, step in enumerate(steps) if step.get("id") == step_id)
    steps[i]["llm"] = {**steps[i]["llm"], **version.changes}
    if version.model is not None:
        steps[i]["model"] = version.model
    text = yaml.safe_dump({**data, "steps": steps}, allow_unicode=True, sort_keys=False)
    return validate(load_playbook(playbook.path, text))


def variant_cases(cases: list[CaseSpec], keys: list[str]) -> tuple[list[CaseSpec], dict[str, str]]:
    """Each case once per variant, and which variant each of those cases runs."""
    if not keys:
        return cases, {}
    expanded, chosen = [], {}
    for case in cases:
        for key in keys:
            copy = case.model_copy(update={"id": f"{case.id}{SEPARATOR}{key}"})
            expanded.append(copy)
            chosen[copy.id] = key
    return expanded, chosen


def base_case(case_id: str) -> str:
    return case_id.split(SEPARATOR, 1)[0]


def by_variant(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's cases summed per variant, in the order they first appear: the side-by-side comparison."""
    rows: dict[str, dict[str, Any]] = {}
    for case in report.get("cases", []):
        if SEPARATOR not in case["id"]:
            continue
        key = case["id"].split(SEPARATOR, 1)[1]
        row = rows.setdefault(key, {"variant": key, "cases": 0, "passed": 0, "score": 0.0, "tokens": 0, "cost": 0.0})
        row["cases"] += 1
        row["passed"] += int(bool(case["passed"]))
        row["score"] += float(case["mean_score"])
        row["tokens"] += int(case["tokens"])
        row["cost"] += float(case["cost"])
    for row in rows.values():
        row["score"] = round(row["score"] / row["cases"], 4) if row["cases"] else 0.0
    return list(rows.values())
