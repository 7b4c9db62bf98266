"""What a Prompt Flow flow says about evaluating it → an eval suite: its node variants as the suite's `variants:`
(runner/evals/variants.py), its `run.yml` data and column mapping as the suite's dataset, and an evaluation run
that compares a ground-truth column with an output (`groundtruth: ${data.answer}`, `prediction:
${run.outputs.category}`) as an `equals` check. Pure but for reading the flow's files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Protocol

from runner.dsl.yaml_loader import safe_load
from runner.errors import PlaybookError
from runner.i18n import _
from runner.importers.dify import Imported

_DATA = re.compile(r"^\$\{data\.([\w-]+)\}$")
_OUTPUT = re.compile(r"^\$\{run\.outputs\.([\w-]+)\}$")
VARIANT_FIELDS = ("system", "prompt", "messages", "temperature", "top_p", "max_tokens", "presence_penalty",
                  "frequency_penalty", "seed", "stop")


class FlowReader(Protocol):
    """What this module reads of a flow being imported (runner/importers/promptflow.py)."""

    flow: dict[str, Any]
    folder: Path
    ids: dict[str, str]  # node name → step id
    result: Imported

    def prompt_node(self, name: str, node: dict[str, Any], kind: str,
                    before: list[dict[str, Any]]) -> dict[str, Any] | None: ...


def suite_for(flow: FlowReader) -> tuple[dict[str, Any] | None, Path | None]:
    """(the suite, the data file its dataset reads) — or (None, None) when the flow says nothing to evaluate."""
    variants = _variants(flow)
    run = _yaml(flow.folder / "run.yml")
    data = flow.folder / str(run.get("data") or "data.jsonl")
    columns = {f"inputs.{name}": match.group(1) for name, value in (run.get("column_mapping") or {}).items()
               if isinstance(value, str) and (match := _DATA.match(value.strip()))}
    if not data.is_file() or not columns:
        columns = {f"inputs.{name}": name for name in flow.flow.get("inputs") or {}} if data.is_file() else {}
    if not variants and not columns:
        return None, None
    suite: dict[str, Any] = {"description": _("imported from the Prompt Flow flow {name}").format(
                                 name=flow.folder.name)}
    asserts = _checks(flow, columns)
    if variants:
        suite["variants"] = variants
    if columns:
        suite["dataset"] = {"file": f"data/{flow.result.name}{data.suffix}", "columns": columns}
    if asserts:
        suite["defaults"] = {"assert": asserts}
    else:
        suite["defaults"] = {"assert": [{"name": _("the run finished"), "that": "run.status", "equals": "done"}]}
    return suite, data if columns else None


def _variants(flow: FlowReader) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for name, spec in (flow.flow.get("node_variants") or {}).items():
        if name not in flow.ids or not isinstance(spec, dict):
            continue
        default = str(spec.get("default_variant_id") or "")
        versions = [{"name": default}] if default else []
        for variant, body in (spec.get("variants") or {}).items():
            node = (body or {}).get("node") or {}
            if variant == default or str(node.get("type")) != "llm":
                continue
            llm = (flow.prompt_node(name, {"name": name, **node}, "llm", []) or {}).get("llm") or {}
            if "history" in llm:
                flow.result.notes.append(_("variant {variant} of '{name}' writes role markers in a loop, which a "
                                           "suite variant cannot carry; it is not in the suite").format(
                                             variant=variant, name=name))
                continue
            versions.append({"name": str(variant), **{k: llm[k] for k in VARIANT_FIELDS if k in llm}})
        if len(versions) > 1:
            found[flow.ids[name]] = versions
    return found


def _checks(flow: FlowReader, columns: dict[str, str]) -> list[dict[str, Any]]:
    """An evaluation run comparing a data column with an output → `equals` (its column joins the dataset as a var)."""
    run = _yaml(flow.folder / "run_evaluation.yml")
    mapping = run.get("column_mapping") or {}
    truth = [m.group(1) for v in mapping.values() if isinstance(v, str) and (m := _DATA.match(v.strip()))]
    said = [m.group(1) for v in mapping.values() if isinstance(v, str) and (m := _OUTPUT.match(v.strip()))]
    if len(truth) != 1 or len(said) != 1 or said[0] not in (flow.flow.get("outputs") or {}):
        return []
    columns[f"vars.{truth[0]}"] = truth[0]
    evaluation = Path(str(run.get("flow") or "evaluation")).name
    return [{"name": _("{output} matches {column} (the evaluation flow {flow})").format(
                 output=said[0], column=truth[0], flow=evaluation),
             "that": f"outputs.{said[0]}", "equals": "${{ vars." + truth[0] + " }}"}]


def _yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = safe_load(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError, PlaybookError):
        return {}
    return loaded if isinstance(loaded, dict) else {}
