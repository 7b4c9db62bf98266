"""The suite report as data (JSON, also the stored baseline) and as markdown and JUnit XML."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any
from xml.etree import ElementTree as ET

from runner.evals.assertions import Verdict
from runner.evals.engine import RULE, CaseResult, SuiteRun
from runner.evals.variants import by_variant
from runner.i18n import N_, _
from runner.wording import number, status, worded

MAX_STORED_OUTPUT = 8_000  # characters of one step's output kept in a report or baseline


def build_report(run: SuiteRun) -> dict[str, Any]:
    cases = [_case(res, run.k) for res in run.results]
    passed = sum(c["passed"] for c in cases)
    return {
        "suite": run.suite.name, "playbook": run.suite.spec.playbook, "mode": run.mode,
        "created_at": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds": run.seconds,
        "repeat": {"n": run.n, "k": run.k}, "rule": _(RULE), "workdir": str(run.workdir), "currency": run.currency,
        "totals": {"cases": len(cases), "passed": passed, "failed": len(cases) - passed,
                   "runs": sum(c["runs"] for c in cases), "tokens": sum(c["tokens"] for c in cases),
                   "cost": round(sum(c["cost"] for c in cases), 6),
                   "mean_score": round(sum(c["mean_score"] for c in cases) / len(cases), 4) if cases else 0.0},
        "cases": cases, "comparison": None, "variants": by_variant({"cases": cases})}


def variant_lines(report: dict[str, Any]) -> list[str]:
    """The variants side by side, as a markdown table (none when the suite has no variants)."""
    rows = report.get("variants") or []
    if not rows:
        return []
    lines = ["", _("## Variants side by side"), "",
             "| " + " | ".join([_("Variant"), _("Cases passed"), _("Mean score"), "tokens",
                               _("Cost ({currency})").format(currency=report.get("currency", "CNY"))]) + " |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['passed']}/{r['cases']} | {r['score']:.2f} | {number(r['tokens'])} | "
              f"{r['cost']:.4f} |" for r in rows]
    return lines


def _case(res: CaseResult, k: int) -> dict[str, Any]:
    runs = res.runs
    first = runs[0]
    steps = portable(first.steps, first.local_paths)  # once: every step's entry reads it (was once per step)
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
        "steps": [_step(name, steps) for name in first.order],
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
    step_id, _hash, visit = name.partition("#")
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
    return text[:MAX_STORED_OUTPUT] + _("\n…(cut at {kept:,} of {total:,} characters)").format(
        kept=MAX_STORED_OUTPUT, total=len(text))


def failed(report: dict[str, Any]) -> bool:
    return report["totals"]["failed"] > 0 or bool((report.get("comparison") or {}).get("regressed"))


def step_name(step_id: str) -> str:
    step, _hash, visit = step_id.partition("#")
    return _("{step} (visit {visit})").format(step=step, visit=visit) if visit and visit != "1" else step


CHANGES = {"regressed": N_("change|regressed"), "fixed": N_("change|fixed"), "new": N_("change|new"),
           "removed": N_("change|removed"), "same": N_("change|same")}


def change_word(change: str) -> str:
    """A case's change against the baseline, in the user's language."""
    return worded(CHANGES[change]) if change in CHANGES else change


def failure_lines(case: dict[str, Any]) -> list[str]:
    """Why a case failed, one line per reason: the run's error, then each failing assertion with its step."""
    lines = []
    expected = case.get("expect_status", "done")
    unexpected = [s for s in case.get("statuses", []) if s != expected]
    if unexpected:
        lines.append(_("run ended {statuses}; expected {expected}").format(
            statuses=", ".join(status(s) for s in sorted(set(unexpected))), expected=status(expected)))
    if case.get("error") and expected == "done":
        lines.append(_("error: {error}").format(error=case["error"]))
    for a in case["assertions"]:
        if not a["passed"]:
            where = _(" [step {step}]").format(step=a["step"]) if a.get("step") else ""
            lines.append(_("{label}{where}: {reason} (passed {passed}/{runs})").format(
                label=a["label"], where=where, reason=a["reason"], passed=a["passed_runs"], runs=case["runs"]))
    return lines


def summary_line(report: dict[str, Any]) -> str:
    """`3/4 cases passed · 4 runs (replay, N=1, k=1) · mean score 0.91 · 1,234 tokens · cost 0.0123 · 2.1 s`."""
    t = report["totals"]
    return _("{passed}/{cases} cases passed · {runs} runs ({mode}, N={n}, k={k}) · mean score {score} · {tokens} "
             "tokens · cost {cost} · {seconds} s").format(
        passed=t["passed"], cases=t["cases"], runs=t["runs"], mode=report["mode"], n=report["repeat"]["n"],
        k=report["repeat"]["k"], score=f"{t['mean_score']:.2f}", tokens=number(t["tokens"]),
        cost=f"{t['cost']:.4f} {report.get('currency', 'CNY')}", seconds=number(report["seconds"], 1))


def to_markdown(report: dict[str, Any]) -> str:
    lines = [_("# Eval: {suite} ({playbook})").format(suite=report["suite"], playbook=report["playbook"]), "",
             summary_line(report), "", _("Rule: {rule}").format(rule=report["rule"]), "",
             "| " + " | ".join([_("Case"), _("Result"), _("Pass rate"), _("Score"), "tokens",
                               _("Cost ({currency})").format(currency=report.get("currency", "CNY")),
                               _("s/run")]) + " |", "|---|---|---|---|---|---|---|"]
    for c in report["cases"]:
        result = _("✓ pass") if c["passed"] else _("× FAIL")
        lines.append(f"| {c['id']} | {result} | {c['passes']}/{c['runs']} | "
                     f"{c['mean_score']:.2f} | {number(c['tokens'])} | {c['cost']:.4f} | {c['seconds']:.2f} |")
    lines += variant_lines(report)
    for c in report["cases"]:
        if not c["passed"]:
            lines += ["", f"## × {c['id']}", *[f"- {line}" for line in failure_lines(c)]]
    comparison = report.get("comparison")
    if comparison:
        lines += ["", _("## Against the baseline"), "", _("Rule: {rule}").format(rule=comparison["rule"]), ""]
        score = comparison["score"]
        lines.append(_("Mean score change {delta} (95% interval {low} … {high}, {cases} cases): {verdict}.").format(
            delta=f"{score['mean_delta']:+.3f}", low=f"{score['interval'][0]:+.3f}",
            high=f"{score['interval'][1]:+.3f}", cases=score["cases"],
            verdict=_("**regressed**") if score["regressed"] else _("within noise or better")))
        for c in comparison["cases"]:
            if c["change"] in ("regressed", "fixed", "new", "removed") or c.get("newly_failing"):
                line = f"- **{c['id']}**: {change_word(c['change'])}"
                if c.get("diverged"):
                    line += _("; first diverging step: `{step}` ({what})").format(
                        step=step_name(c["diverged"]["step"]), what=c["diverged"]["what"])
                if c.get("newly_failing"):
                    line += _("; newly failing: {assertions}").format(assertions=", ".join(c["newly_failing"]))
                lines.append(line)
        if not comparison["regressed"]:
            lines.append(_("- no regressions"))
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
            lines = failure_lines(c) or [_("regressed against the baseline")]
            failure = ET.SubElement(case, "failure", message=lines[0][:500])
            failure.text = "\n".join(lines)
        cost = f"{c['cost']:.4f} {report.get('currency', 'CNY')}"
        ET.SubElement(case, "system-out").text = _("pass rate {passes}/{runs}, score {score}, tokens {tokens}, cost "
                                                   "{cost}").format(passes=c["passes"], runs=c["runs"],
                                                                    score=f"{c['mean_score']:.2f}",
                                                                    tokens=c["tokens"], cost=cost)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=1, default=str) + "\n"
