"""One suite end to end — load, run, report, compare with the baseline, write the files — for the CLI and pytest."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.config import Project, load_project
from runner.evals.baseline import compare
from runner.evals.cassette import CassetteError
from runner.evals.engine import Mode, run_suite
from runner.evals.load import Suite, SuiteError, load_suite
from runner.evals.report import build_report, failed, to_json, to_junit, to_markdown
from runner.evals.report_html import to_html
from runner.evals.variants import base_case
from runner.i18n import _


@dataclass
class EvalOptions:
    mode: Mode = "live"
    repeat: int | None = None
    k: int | None = None
    concurrency: int | None = None
    cases: list[str] = field(default_factory=list)
    baseline: Path | None = None  # default: the suite's stored baseline, when there is one
    save_baseline: bool = False
    real_models: bool = False  # ignore the suite's `fake_llm:` and call the configured models
    report_dir: Path | None = None  # default: the suite run's folder under .playbook/evals/


@dataclass
class EvalResult:
    suite: Suite
    report: dict[str, Any]
    files: dict[str, Path]

    @property
    def failed(self) -> bool:
        return failed(self.report)


def evaluate_suite(path: str | Path, options: EvalOptions | None = None, *, project: Project | None = None,
                   progress: Callable[[str], None] | None = None) -> EvalResult:
    options = options or EvalOptions()
    suite = load_suite(path)
    if options.cases:  # a case's id, or with its variant (`case@step=variant`)
        named = {c.id for c in suite.cases} | {base_case(c.id) for c in suite.cases}
        unknown = sorted(set(options.cases) - named)
        if unknown:
            raise SuiteError(_("{path}: no case {unknown} (cases: {known})").format(
                                 path=path, unknown=', '.join(unknown),
                                 known=', '.join(dict.fromkeys(base_case(c.id) for c in suite.cases))))
    order = [c.id for c in suite.cases]
    if options.cases:
        suite.cases = [c for c in suite.cases if c.id in options.cases or base_case(c.id) in options.cases]
    baseline = _read_baseline(options.baseline, suite)
    try:
        run = asyncio.run(run_suite(suite, project or load_project(), mode=options.mode, repeat=options.repeat,
                                    k=options.k, concurrency=options.concurrency, real_models=options.real_models,
                                    case_order=order,
                                    progress=progress))
    except CassetteError as exc:
        raise SuiteError(str(exc)) from None
    report = build_report(run)
    if baseline is not None:
        ran = {c.id for c in suite.cases}  # cases left out by --case are not "removed"
        kept = [c for c in baseline.get("cases", []) if c["id"] in ran or c["id"] not in order]
        compared = {**baseline, "cases": kept}
        report["comparison"] = compare(report, compared)
        steps = {c["id"]: c["steps"] for c in baseline.get("cases", [])}
        for case in report["cases"]:
            case["baseline_steps"] = steps.get(case["id"])
    files = write_reports(report, options.report_dir or run.workdir, suite.name)
    if options.save_baseline:
        ran = {c["id"] for c in report["cases"]}
        others = [c for c in (baseline or {}).get("cases", []) if c["id"] not in ran and c["id"] in order]
        cases = [{k: v for k, v in c.items() if k != "baseline_steps"} for c in report["cases"]] + others
        stored = {**report, "comparison": None, "cases": sorted(cases, key=lambda c: order.index(c["id"]))}
        suite.baseline_path.parent.mkdir(parents=True, exist_ok=True)
        suite.baseline_path.write_text(to_json(stored), encoding="utf-8")
        files["baseline"] = suite.baseline_path
    return EvalResult(suite, report, files)


def _read_baseline(given: Path | None, suite: Suite) -> dict[str, Any] | None:
    path = given or suite.baseline_path
    if not path.is_file():
        if given is not None:
            raise SuiteError(_("{given}: no such baseline (save one with --save-baseline)").format(given=given))
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SuiteError(_("{path}: cannot read the baseline: {exc}").format(path=path, exc=exc)) from None
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise SuiteError(_("{path}: not an eval report (no `cases`)").format(path=path))
    return data


def write_reports(report: dict[str, Any], folder: Path, name: str) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {"json": folder / f"{name}.json", "markdown": folder / f"{name}.md", "html": folder / f"{name}.html",
             "junit": folder / f"{name}.junit.xml"}
    files["json"].write_text(to_json(report), encoding="utf-8")
    files["markdown"].write_text(to_markdown(report), encoding="utf-8")
    files["html"].write_text(to_html(report), encoding="utf-8")
    files["junit"].write_text(to_junit(report), encoding="utf-8")
    return files
