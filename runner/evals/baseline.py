"""Compare a suite report with its baseline: which cases regressed, the first step where each diverged, and
whether the mean score dropped beyond noise (paired bootstrap over cases). Pure: reports in, comparison out."""

from __future__ import annotations

import random
from typing import Any

from runner.i18n import N_, _

REGRESSION_RULE = N_(
    "A case regresses when it passed in the baseline (at least k of N runs) and now fails (fewer than k of N). "
    "The suite's score regresses when the mean per-case score dropped and the 95% paired-bootstrap interval of "
    "that drop (2,000 resamples of the cases both reports share) lies entirely below zero.")
RESAMPLES = 2000


def compare(current: dict[str, Any], baseline: dict[str, Any], *, seed: int = 0) -> dict[str, Any]:
    before = {c["id"]: c for c in baseline.get("cases", [])}
    now = {c["id"]: c for c in current.get("cases", [])}
    cases = []
    for case_id, case in now.items():
        old = before.get(case_id)
        if old is None:
            cases.append({"id": case_id, "change": "new"})
            continue
        change = ("regressed" if old["passed"] and not case["passed"] else
                  "fixed" if case["passed"] and not old["passed"] else
                  "still passing" if case["passed"] else "still failing")
        worse = [a["label"] for a in case["assertions"] if not a["passed"] and
                 any(b["label"] == a["label"] and b["passed"] for b in old["assertions"])]
        cases.append({"id": case_id, "change": change, "pass_rate": [old["pass_rate"], case["pass_rate"]],
                      "score": [old["mean_score"], case["mean_score"]],
                      "score_delta": round(case["mean_score"] - old["mean_score"], 4),
                      "newly_failing": worse, "diverged": first_divergence(old["steps"], case["steps"])})
    cases += [{"id": case_id, "change": "removed"} for case_id in before if case_id not in now]
    paired = [(before[c]["mean_score"], now[c]["mean_score"]) for c in now if c in before]
    score = bootstrap_drop(paired, seed=seed)
    regressed = [c["id"] for c in cases if c["change"] == "regressed"]
    return {"baseline_created_at": baseline.get("created_at"), "rule": _(REGRESSION_RULE), "cases": cases,
            "regressed_cases": regressed, "score": score,
            "regressed": bool(regressed) or score["regressed"]}


def first_divergence(old_steps: list[dict[str, Any]], new_steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first step (in the order the current run executed them) whose output or status differs from the
    baseline's same step and visit; None when every step matches."""
    old = {s["id"]: s for s in old_steps}
    for step in new_steps:
        was = old.get(step["id"])
        if was is None:
            return {"step": step["id"], "what": _("this step did not run in the baseline"), "before": None,
                    "after": step.get("output")}
        if was.get("status") != step.get("status"):
            return {"step": step["id"], "what": _("status {before} → {after}").format(
                                                    before=was.get('status'), after=step.get('status')),
                    "before": was.get("output"), "after": step.get("output")}
        if was.get("digest") != step.get("digest"):
            return {"step": step["id"], "what": _("output changed"), "before": was.get("output"),
                    "after": step.get("output")}
    ran = {s["id"] for s in new_steps}
    missing = [s["id"] for s in old_steps if s["id"] not in ran]
    if missing:
        return {"step": missing[0], "what": _("ran in the baseline but not now"),
                "before": old[missing[0]].get("output"), "after": None}
    return None


def bootstrap_drop(pairs: list[tuple[float, float]], *, seed: int = 0) -> dict[str, Any]:
    """Mean of (now − before) over cases with a 95% paired-bootstrap interval."""
    if not pairs:
        return {"mean_delta": 0.0, "interval": [0.0, 0.0], "cases": 0, "regressed": False}
    deltas = [b - a for a, b in pairs]
    mean = sum(deltas) / len(deltas)
    rng = random.Random(seed)
    means = sorted(sum(rng.choice(deltas) for _draw in deltas) / len(deltas) for _round in range(RESAMPLES))
    low, high = means[int(0.025 * RESAMPLES)], means[int(0.975 * RESAMPLES) - 1]
    return {"mean_delta": round(mean, 4), "interval": [round(low, 4), round(high, 4)], "cases": len(deltas),
            "regressed": mean < 0 and high < 0}
