"""Assertions on a captured run: each check takes a value and says pass/fail, a score in [0, 1] and why."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from runner.dsl import templates
from runner.errors import RunError
from runner.evals.paths import STAR, PathMissing, parse_path, resolve
from runner.evals.suite import Assertion, CaseSpec

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
            verdict.reason = f"approval step '{assertion.approval_reached}' never asked for a decision"
        else:
            verdict.reason = f"asked {len(asked)} time(s)"
        return verdict
    try:
        targets = resolve(parts, record)
    except PathMissing as exc:
        status = record.get("run", {}).get("status")
        reason = f"no outputs: the run ended {status}" if parts[0] == "outputs" and status != "done" else str(exc)
        verdict.passed, verdict.score, verdict.reason = False, 0.0, reason
        verdict.failed_at = [assertion.that]
        return verdict
    if assertion.check == "overlap" and STAR in parts:  # a set check is about the whole collection
        targets = [(assertion.that, [value for _, value in targets])]
    if not targets:
        verdict.reason = "no items to check (an empty list)"
        return verdict
    context = {"vars": case.vars, "inputs": case.inputs}
    scores, reasons = [], []
    for where, value in targets:
        try:
            score, reason = await _check(assertion, value, context, case, judge)
        except CheckFailed as exc:
            score = exc.score
            verdict.failed_at.append(where)
            reasons.append(f"{where}: {exc}")
        else:
            if reason and not verdict.failed_at:
                reasons.append(f"{where}: {reason}")
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
        _require(value == want, f"is {_short(value)}, expected {_short(want)}")
    elif check in ("contains", "not_contains"):
        want = expected(a.contains if check == "contains" else a.not_contains)
        found = _contains(value, want)
        _require(found if check == "contains" else not found,
                 f"{_short(value)} {'does not contain' if check == 'contains' else 'contains'} {_short(want)}")
    elif check == "regex":
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        _require(re.search(str(a.regex), text) is not None, f"{_short(text)} does not match /{a.regex}/")
    elif check == "json_schema":
        return _schema(a.json_schema or {}, value)
    elif check == "bounds":
        _in_bounds(_number(value), a.min, a.max, "")
    elif check == "length":
        _require(isinstance(value, str | list | dict), f"{_short(value)} has no length")
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
            raise CheckFailed(f"the judge could not score: {exc}") from None
        shown = f"{score:g}/10 (pass ≥ {a.judge.min_score}): {reason}"
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
            raise CheckFailed(f"{_short(value)} is not a number") from None
    return float(value)


def _in_bounds(number: float, low: float | None, high: float | None, what: str) -> None:
    if low is not None and number < low:
        raise CheckFailed(f"{what}{number:g} is below the minimum {low:g}")
    if high is not None and number > high:
        raise CheckFailed(f"{what}{number:g} is above the maximum {high:g}")


def _schema(schema: dict[str, Any], value: Any) -> tuple[float, str]:
    import jsonschema

    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first.path)
        more = f" (+{len(errors) - 1} more)" if errors[1:] else ""
        raise CheckFailed(f"{where or 'value'}: {first.message}{more}")
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
    shown = f"recall {recall:.2f}, precision {precision:.2f}, jaccard {jaccard:.2f}"
    missing = sorted(e - f)[:5]
    for name, got, bound in (("recall", recall, a.overlap.min_recall), ("precision", precision,
                             a.overlap.min_precision), ("jaccard", jaccard, a.overlap.min_jaccard)):
        if bound is not None and got < bound:
            raise CheckFailed(f"{name} {got:.2f} < {bound:g} ({shown}; missing: {', '.join(missing) or 'none'})")
    return 1.0, shown


def _python(target: str, value: Any, case: CaseSpec) -> tuple[float, str]:
    module_name, _, function_name = target.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as exc:
        raise CheckFailed(f"cannot load {target}: {exc}") from None
    try:
        result = function(value, case)
    except Exception as exc:  # the user's check failing is a failed check, not a crash of the suite
        raise CheckFailed(f"{target} raised {type(exc).__name__}: {exc}") from None
    reason = ""
    if isinstance(result, tuple):
        result, reason = result[0], str(result[1])
    if isinstance(result, bool):
        _require(result, reason or f"{target} returned False")
        return 1.0, reason
    score = float(result)
    if score < 0.5:
        raise CheckFailed(reason or f"{target} scored {score:.2f} (< 0.5)", score)
    return score, reason


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
