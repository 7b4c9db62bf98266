"""Turn `playbook approve/reject` arguments into a decision, checked before the run resumes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from runner.dsl.output_schema import to_model
from runner.engine.approvals import EditError, apply_edits, parse_set
from runner.errors import NoSuchRun, PlaybookError, RunError
from runner.i18n import _
from runner.store import Store
from runner.wording import status as status_word


def _pending(store: Store, run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    run = store.get_run(run_id)
    if run is None:
        raise NoSuchRun(run_id, store.location)
    if run["status"] != "waiting" or not run["pending"]:
        raise RunError(_("run '{id}' is {status}, not waiting for approval").format(
                           id=run['id'], status=status_word(run['status'])))
    return run, run["pending"]


def build_decision(store: Store, run_id: str, action: str, pairs: list[str],
                   edits_file: Path | None, comment: str | None, by: str, at: float) -> dict[str, Any]:
    """Validate edits against the waiting draft's editable fields and schema; nothing is applied if bad."""
    _run, pending = _pending(store, run_id)
    try:
        edits = parse_set(pairs, pending["draft"])
        if edits_file is not None:
            try:
                loaded = json.loads(edits_file.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise EditError(_("{edits_file}: cannot read edits JSON: {exc}").format(
                                    edits_file=edits_file, exc=exc)) from None
            if not isinstance(loaded, dict):
                raise EditError(_("{edits_file}: edits must be a JSON object of field: value").format(
                                    edits_file=edits_file))
            edits.update(loaded)
        model = to_model(pending["schema"], "Draft") if pending.get("schema") else None
        apply_edits(pending["draft"], edits, pending.get("editable") or [], model)
    except EditError as exc:
        raise PlaybookError(_("run {run_id}: {exc}").format(run_id=run_id, exc=exc)) from None
    return {"action": action, "comment": comment, "edits": edits, "by": by, "at": at}


def timeout_decision(store: Store, run_id: str, *, now: float | None = None) -> dict[str, Any] | None:
    """For a waiting run past its approval deadline (at `now`, default the present), the decision `on_timeout`
    asks for."""
    run = store.get_run(run_id)
    if run is None or run["status"] != "waiting" or not run["pending"]:
        return None
    pending = run["pending"]
    deadline = pending.get("deadline")
    if deadline is None or (time.time() if now is None else now) < deadline:
        return None
    policy = pending.get("on_timeout", "fail")
    if policy == "fail":
        store.update_run(run["id"], status="failed", error=_("approval '{step}' timed out").format(
                                                               step=pending['step']),
                         pending=None, ended_at=time.time())
        raise RunError(_("approval '{step}' timed out (on_timeout: fail)").format(step=pending['step']))
    return {"action": policy, "comment": _("approval timed out"), "edits": {}, "by": "timeout",
            "at": time.time()}
