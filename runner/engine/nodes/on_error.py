"""`on_error:` — what a failed step (or a failed map item) becomes when the playbook tolerates it.

Pure: decides whether an exception may be tolerated, and what is recorded in its place. Cancellation,
the cost limit and LangGraph's interrupts (an approval pausing the run) are never errors to tolerate.
"""

from __future__ import annotations

import math
from typing import Any

from runner.dsl.spec import Step
from runner.errors import CostLimitReached, RunCancelled, RunError, TooManyFailures
from runner.i18n import _


def tolerable(step: Step, exc: BaseException, *, item: bool = False) -> bool:
    """Whether `on_error` lets the run go on past `exc` (for one map item when `item`)."""
    if step.error_policy[0] == "fail" or not isinstance(exc, Exception):
        return False
    if isinstance(exc, RunCancelled | CostLimitReached):
        return False
    if isinstance(exc, TooManyFailures):  # the bound is the point: only an error branch catches it
        return not item and step.error_policy[0] == "goto"
    return type(exc).__module__.split(".")[0] != "langgraph"  # GraphInterrupt & co. carry control flow


def error_record(exc: BaseException, **where: Any) -> dict[str, Any]:
    """What `steps.<id>.error` (or one entry of `steps.<id>.errors`) holds: the message and the error's
    details, e.g. `{message, status: 404, url}` for an HTTP error, so `when:` can test them."""
    if isinstance(exc, RunError):
        message, details = exc.reason, exc.details
    else:
        message, details = f"internal error: {type(exc).__name__}: {exc}", {}
    return {**where, "message": message, **details}


def fallback(step: Step) -> Any:
    """The output that stands in for a failed step or item: `default`'s value, else null."""
    policy, value = step.error_policy
    return value if policy == "default" else None


def failure_bound(step: Step, total: int) -> int | None:
    """How many failed items a map may have before the step fails; None for no bound."""
    bound = step.max_failures
    if bound is None:
        return None
    if isinstance(bound, str):
        return math.floor(total * float(bound.rstrip("%")) / 100)
    return bound


def problems_of(steps: dict[str, Any]) -> list[dict[str, Any]]:
    """The errors a run went on past, for its summary: each failed step, and each map's failed items."""
    found: list[dict[str, Any]] = []
    for step_id, result in steps.items():
        if not isinstance(result, dict):
            continue
        errors = result.get("errors") or []
        if result.get("status") == "failed" and result.get("error"):
            found.append({"step": step_id, "message": result["error"].get("message"), "failed_items": len(errors)})
        elif errors:
            total = len(result.get("items") or errors)
            found.append({"step": step_id, "failed_items": len(errors), "items": total,
                          "message": _("; ").join(_("item {index}: {message}").format(index=e.get("index"),
                                                                                      message=e.get("message"))
                                                  for e in errors[:3])
                          + (" …" if len(errors) > 3 else "")})
    return found


def describe(problem: dict[str, Any]) -> str:
    """One line for the console, `runs show` and notices."""
    if "items" in problem:
        return _("step {step}: {failed} of {items} items failed — {message}").format(
            step=problem["step"], failed=problem["failed_items"], items=problem["items"], message=problem["message"])
    return _("step {step} failed and was skipped as on_error says — {message}").format(step=problem["step"],
                                                                                       message=problem["message"])
