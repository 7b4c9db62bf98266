"""Assertions on a captured run: each check takes a value and says pass/fail, a score in [0, 1] and why."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from runner.dsl import templates
from runner.errors import RunError, framed
from runner.evals.paths import STAR, PathMissing, parse_path, resolve
from runner.evals.suite import Assertion, CaseSpec
from runner.i18n import _

JudgeFn = Callable[[str, Any, CaseSpec], Awaitable[tuple[float, str]]]  # rubric, value, case → (0–10, reason)


@dataclass
class Verdict:
    label: str
    check: str
    path: str
    step: str | None  # the step the path points into, if any
    weight: float
    passed: bool
    score: float  # 0..1
    reason: str = ""
    failed_at: list[str] = field(default_factory=list)  # concrete paths that failed


class CheckFailed(Exception):
    def __init__(self, message: str, score: float = 0.0) -> None:
        super().__init__(message)
        self.score = score


async def evaluate(assertion: Assertion, record: dict[str, Any], case: CaseSpec, judge: JudgeFn | None) -> Verdict:
    parts = parse_path(assertion.that)
    step = str(parts[1]) if parts[0] in ("steps", "approvals") and len(parts) > 1 else None
    verdict = Verdict(assertion.label, assertion.check, assertion.that, step, assertion.weight, True, 1.0)
    if assertion.approval_reached is not None:
        asked = [a for a in record.get("approvals", {}).get(assertion.approval_reached, [])
                 if a.get("action") == "requested"]
        verdict.step = assertion.approval_reached
        if not asked:
            verdict.passed, verdict.score = False, 0.0
            verdict.reason = _("approval step '{approval_reached}' never asked for a decision").format(
                                 approval_reached=assertion.approval_reached)
        else:
            verdict.reason = _("asked {value} time(s)").format(value=len(asked))
        return verdict
    try:
        targets = resolve(parts, record)
    except PathMissing as exc:
        status = record.get("run", {}).get("status")
        ended = parts[0] == "outputs" and status != "done"
        reason = _("no outputs: the run ended {status}").format(status=status) if ended else str(exc)
        verdict.passed, verdict.score, verdict.reason = False, 0.0, reason
        verdict.failed_at = [assertion.that]
        return verdict
    if assertion.check == "overlap" and STAR in parts:  # a set check is about the whole collection
        targets = [(assertion.that, [value for _path, value in targets])]
    if not targets:
        verdict.reason = _("no items to check (an empty list)")
        return verdict
    context = {"vars": case.vars, "inputs": case.inputs}
    scores, reasons = [], []
    for where, value in targets:
        try:
            score, reason = await _check(assertion, value, context, case, judge)
        except CheckFailed as exc:
            score = exc.score
            verdict.failed_at.append(where)
            reasons.append(framed(where, str(exc)))
        else:
            if reason and not verdict.failed_at:
                reasons.append(framed(where, reason))
        scores.append(score)
    verdict.score = sum(scores) / len(scores)
    verdict.passed = not verdict.failed_at
    if verdict.failed_at:
        reasons = [r for r in reasons if r.split(": ")[0] in verdict.failed_at]
    verdict.reason = "; ".join(reasons[:3])
    if len(verdict.failed_at) > 3:
        verdict.reason += f"; … {len(verdict.failed_at) - 3} more"
    return verdict


async def _check(a: Assertion, value: Any, context: dict[str, Any], case: CaseSpec,
                 judge: JudgeFn | None) -> tuple[float, str]:
    def expected(raw: Any) -> Any:
        return templates.render(raw, context)

    check = a.check
    if check == "equals":
        want = expected(a.equals)
        _require(value == want, _("is {got}, expected {wanted}").format(
                                    got=_short(value), wanted=_short(want)))
    elif check in ("contains", "not_contains"):
        want = expected(a.contains if check == "contains" else a.not_contains)
        found = _contains(value, want)
        _require(found if check == "contains" else not found,
                 (_("{value} does not contain {wanted}") if check == "contains" else
                  _("{value} contains {wanted}")).format(value=_short(value), wanted=_short(want)))
    elif check == "regex":
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        _require(re.search(str(a.regex), text) is not None, _("{value} does not match /{regex}/").format(
                                                                value=_short(text), regex=a.regex))
    elif check == "json_schema":
        return _schema(a.json_schema or {}, value)
    elif check == "bounds":
        _in_bounds(_number(value), a.min, a.max, "")
    elif check == "length":
        _require(isinstance(value, str | list | dict), _("{value} has no length").format(value=_short(value)))
        assert a.length is not None
        _in_bounds(len(value), a.length.min, a.length.max, "length ")
    elif check == "overlap":
        return _overlap(a, value, expected)
    elif check == "python":
        return _python(str(a.python), value, case)
    elif check == "judge":
        assert a.judge is not None and judge is not None
        try:
            score, reason = await judge(a.judge.rubric, value, case)
        except RunError as exc:  # the judge's call failed (provider down, not in the cassette)
            raise CheckFailed(_("the judge could not score: {exc}").format(exc=exc)) from None
        shown = _("{score:g}/10 (pass ≥ {min_score}): {reason}").format(
                    score=score, min_score=a.judge.min_score, reason=reason)
        if score < a.judge.min_score:
            raise CheckFailed(shown, score / 10)
        return score / 10, shown
    return 1.0, ""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise CheckFailed(message)


def _contains(value: Any, want: Any) -> bool:
    if isinstance(value, str):
        return all(str(w) in value for w in want) if isinstance(want, list) else str(want) in value
    if isinstance(value, list):
        return all(w in value for w in want) if isinstance(want, list) else want in value
    if isinstance(value, dict):
        return want in value
    return False


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise CheckFailed(_("{value} is not a number").format(value=_short(value))) from None
    return float(value)


def _in_bounds(number: float, low: float | None, high: float | None, what: str) -> None:
    if low is not None and number < low:
        raise CheckFailed(_("{what}{number:g} is below the minimum {low:g}").format(
                              what=what, number=number, low=low))
    if high is not None and number > high:
        raise CheckFailed(_("{what}{number:g} is above the maximum {high:g}").format(
                              what=what, number=number, high=high))


def _schema(schema: dict[str, Any], value: Any) -> tuple[float, str]:
    import jsonschema

    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first.path)
        more = f" (+{len(errors) - 1} more)" if errors[1:] else ""
        raise CheckFailed(framed(where or _("value"), first.message + more))
    return 1.0, ""


def _overlap(a: Assertion, value: Any, expected: Callable[[Any], Any]) -> tuple[float, str]:
    assert a.overlap is not None
    want = expected(a.overlap.expected)
    if isinstance(want, str):
        want = [w.strip() for w in re.split(r"[|,，、]", want) if w.strip()]
    found = value if isinstance(value, list) else [value]
    e, f = {str(x) for x in want}, {str(x) for x in found}
    both = e & f
    recall = len(both) / len(e) if e else 1.0
    precision = len(both) / len(f) if f else 1.0
    jaccard = len(both) / len(e | f) if e | f else 1.0
    shown = _("recall {recall:.2f}, precision {precision:.2f}, jaccard {jaccard:.2f}").format(
                recall=recall, precision=precision, jaccard=jaccard)
    missing = sorted(e - f)[:5]
    for name, got, bound in (("recall", recall, a.overlap.min_recall), ("precision", precision,
                             a.overlap.min_precision), ("jaccard", jaccard, a.overlap.min_jaccard)):
        if bound is not None and got < bound:
            raise CheckFailed(_("{name} {got:.2f} < {bound:g} ({shown}; missing: {value})").format(
                                  name=name, got=got, bound=bound, shown=shown, value=', '.join(missing) or _('none')))
    return 1.0, shown


def _python(target: str, value: Any, case: CaseSpec) -> tuple[float, str]:
    module_name, _colon, function_name = target.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as exc:
        raise CheckFailed(_("cannot load {target}: {exc}").format(target=target, exc=exc)) from None
    try:
        result = function(value, case)
    except Exception as exc:  # the user's check failing is a failed check, not a crash of the suite
        raise CheckFailed(_("{target} raised {reason}: {exc}").format(
                              target=target, reason=type(exc).__name__, exc=exc)) from None
    reason = ""
    if isinstance(result, tuple):
        result, reason = result[0], str(result[1])
    if isinstance(result, bool):
        _require(result, reason or _("{target} returned False").format(target=target))
        return 1.0, reason
    score = float(result)
    if score < 0.5:
        raise CheckFailed(reason or _("{target} scored {score:.2f} (< 0.5)").format(target=target, score=score), score)
    return score, reason


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
