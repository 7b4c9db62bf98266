"""The suite report as data (JSON, also the stored baseline) and as markdown and JUnit XML."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any
from xml.etree import ElementTree as ET

from runner.evals.assertions import Verdict
from runner.evals.engine import RULE, CaseResult, SuiteRun

MAX_STORED_OUTPUT = 8_000  # characters of one step's output kept in a report or baseline


def build_report(run: SuiteRun) -> dict[str, Any]:
    cases = [_case(res, run.k) for res in run.results]
    passed = sum(c["passed"] for c in cases)
    return {
        "suite": run.suite.name, "playbook": run.suite.spec.playbook, "mode": run.mode,
        "created_at": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds": run.seconds,
        "repeat": {"n": run.n, "k": run.k}, "rule": RULE, "workdir": str(run.workdir),
        "totals": {"cases": len(cases), "passed": passed, "failed": len(cases) - passed,
                   "runs": sum(c["runs"] for c in cases), "tokens": sum(c["tokens"] for c in cases),
                   "cost": round(sum(c["cost"] for c in cases), 6),
                   "mean_score": round(sum(c["mean_score"] for c in cases) / len(cases), 4) if cases else 0.0},
        "cases": cases, "comparison": None}


def _case(res: CaseResult, k: int) -> dict[str, Any]:
    runs = res.runs
    first = runs[0]
    return {
        "id": res.case.id, "description": res.case.description, "passed": res.passed(k),
        "passes": sum(res.passes), "runs": len(runs), "pass_rate": round(sum(res.passes) / len(runs), 4),
        "mean_score": round(sum(res.scores) / len(res.scores), 4), "threshold": res.case.threshold,
        "tokens": sum(r.tokens for r in runs), "cost": round(sum(r.cost for r in runs), 6),
        "seconds": round(sum(r.seconds for r in runs) / len(runs), 3),
        "error": next((r.error for r in runs if r.error), None), "expect_status": res.case.expect_status,
        "statuses": [r.status for r in runs],
        "assertions": _assertions(res.verdicts),
        "runs_detail": [{"repeat": r.repeat, "passed": p, "score": s, "status": r.status, "error": r.error,
                         "seconds": r.seconds, "tokens": r.tokens, "cost": round(r.cost, 6), "run_dir": r.run_dir}
                        for r, p, s in zip(runs, res.passes, res.scores, strict=True)],
        "outputs": {k: _capped(v) for k, v in portable(first.outputs, first.local_paths).items()},
        "steps": [_step(name, portable(first.steps, first.local_paths)) for name in first.order],
    }


def portable(value: Any, replacements: dict[str, str]) -> Any:
    """The value with this machine's folders and ports replaced by placeholders, so two runs compare equal."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    for local in sorted(replacements, key=len, reverse=True):
        if local:
            text = text.replace(json.dumps(local, ensure_ascii=False)[1:-1], replacements[local])
    return json.loads(text)


def _assertions(per_run: list[list[Verdict]]) -> list[dict[str, Any]]:
    out = []
    for i, verdict in enumerate(per_run[0]):
        runs = [vs[i] for vs in per_run]
        failing = next((v for v in runs if not v.passed), None)
        out.append({"label": verdict.label, "check": verdict.check, "path": verdict.path, "step": verdict.step,
                    "weight": verdict.weight, "passed": failing is None,
                    "passed_runs": sum(v.passed for v in runs), "mean_score": round(sum(v.score for v in runs)
                                                                                    / len(runs), 4),
                    "reason": (failing or verdict).reason, "failed_at": (failing or verdict).failed_at})
    return out


def _step(name: str, steps: dict[str, dict[str, Any]]) -> dict[str, Any]:
    step_id, _, visit = name.partition("#")
    entry = steps.get(step_id, {})
    this = next((v for v in entry.get("visits", []) if str(v["visit"]) == visit), entry)
    output = this.get("output")
    blob = json.dumps(output, ensure_ascii=False, sort_keys=True, default=str)
    return {"id": name, "status": this.get("status"), "digest": hashlib.sha256(blob.encode()).hexdigest()[:16],
            "seconds": this.get("seconds"), "cost": this.get("cost"), "output": _capped(output)}


def _capped(value: Any) -> Any:
    """Large values become a preview (digests still cover all of it), so reports and baselines stay reviewable."""
    text = json.dumps(value, ensure_ascii=False, indent=1, default=str)
    if len(text) <= MAX_STORED_OUTPUT:
        return value
    return text[:MAX_STORED_OUTPUT] + f"\n…(cut at {MAX_STORED_OUTPUT:,} of {len(text):,} characters)"


def failed(report: dict[str, Any]) -> bool:
    return report["totals"]["failed"] > 0 or bool((report.get("comparison") or {}).get("regressed"))


def step_name(step_id: str) -> str:
    step, _, visit = step_id.partition("#")
    return f"{step} (visit {visit})" if visit and visit != "1" else step


def failure_lines(case: dict[str, Any]) -> list[str]:
    """Why a case failed, one line per reason: the run's error, then each failing assertion with its step."""
    lines = []
    unexpected = [s for s in case.get("statuses", []) if s != case.get("expect_status", "done")]
    if unexpected:
        lines.append(f"run ended {', '.join(sorted(set(unexpected)))}; expected {case.get('expect_status', 'done')}")
    if case.get("error") and case.get("expect_status", "done") == "done":
        lines.append(f"error: {case['error']}")
    for a in case["assertions"]:
        if not a["passed"]:
            where = f" [step {a['step']}]" if a.get("step") else ""
            lines.append(f"{a['label']}{where}: {a['reason']} (passed {a['passed_runs']}/{case['runs']})")
    return lines


def to_markdown(report: dict[str, Any]) -> str:
    t = report["totals"]
    lines = [f"# Eval: {report['suite']} ({report['playbook']})", "",
             f"{t['passed']}/{t['cases']} cases passed · {t['runs']} runs ({report['mode']}, "
             f"N={report['repeat']['n']}, k={report['repeat']['k']}) · mean score {t['mean_score']:.2f} · "
             f"{t['tokens']:,} tokens · cost {t['cost']:.4f} · {report['seconds']:.1f}s", "",
             f"Rule: {report['rule']}", "",
             "| case | result | pass rate | score | tokens | cost | s/run |", "|---|---|---|---|---|---|---|"]
    for c in report["cases"]:
        lines.append(f"| {c['id']} | {'✓ pass' if c['passed'] else '× FAIL'} | {c['passes']}/{c['runs']} | "
                     f"{c['mean_score']:.2f} | {c['tokens']:,} | {c['cost']:.4f} | {c['seconds']:.2f} |")
    for c in report["cases"]:
        if not c["passed"]:
            lines += ["", f"## × {c['id']}", *[f"- {line}" for line in failure_lines(c)]]
    comparison = report.get("comparison")
    if comparison:
        lines += ["", "## Against the baseline", "", f"Rule: {comparison['rule']}", ""]
        score = comparison["score"]
        lines.append(f"Mean score change {score['mean_delta']:+.3f} (95% interval {score['interval'][0]:+.3f} … "
                     f"{score['interval'][1]:+.3f}, {score['cases']} cases): "
                     f"{'**regressed**' if score['regressed'] else 'within noise or better'}.")
        for c in comparison["cases"]:
            if c["change"] in ("regressed", "fixed", "new", "removed") or c.get("newly_failing"):
                line = f"- **{c['id']}**: {c['change']}"
                if c.get("diverged"):
                    line += f"; first diverging step: `{step_name(c['diverged']['step'])}` ({c['diverged']['what']})"
                if c.get("newly_failing"):
                    line += f"; newly failing: {', '.join(c['newly_failing'])}"
                lines.append(line)
        if not comparison["regressed"]:
            lines.append("- no regressions")
    return "\n".join(lines) + "\n"


def to_junit(report: dict[str, Any]) -> str:
    t = report["totals"]
    suite = ET.Element("testsuite", name=f"eval.{report['suite']}", tests=str(t["cases"]), failures=str(t["failed"]),
                       time=f"{report['seconds']:.3f}")
    regressed = set((report.get("comparison") or {}).get("regressed_cases", []))
    for c in report["cases"]:
        case = ET.SubElement(suite, "testcase", classname=f"eval.{report['suite']}", name=c["id"],
                             time=f"{c['seconds']:.3f}")
        if not c["passed"] or c["id"] in regressed:
            lines = failure_lines(c) or ["regressed against the baseline"]
            failure = ET.SubElement(case, "failure", message=lines[0][:500])
            failure.text = "\n".join(lines)
        ET.SubElement(case, "system-out").text = (f"pass rate {c['passes']}/{c['runs']}, score {c['mean_score']:.2f}, "
                                                   f"tokens {c['tokens']}, cost {c['cost']:.4f}")
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=1, default=str) + "\n"
