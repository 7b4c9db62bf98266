"""The HTTP JSON API: the same operations as the page. Non-local callers send `Authorization: Bearer`."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from runner.errors import PlaybookError
from runner.server.security import check_json
from runner.server.service import Conflict, FieldErrors, NotFound, Service


def _service(request: Request) -> Service:
    found: Service = request.app.state.service
    return found


def _summary(svc: Service, run: dict[str, Any]) -> dict[str, Any]:
    """`status` as stored; `shown_status` as a person should read it (`interrupted`: its process is gone)."""
    keys = ("id", "playbook", "status", "started_at", "ended_at", "tokens_in", "tokens_out", "cost", "error")
    view = svc.view(run)
    return {**{k: run[k] for k in keys}, "shown_status": view["shown_status"], "duration": view["duration"],
            "reached": view["reached"],
            "waiting_for": (run["pending"] or {}).get("title") if run["status"] == "waiting" else None}


async def _body(request: Request) -> dict[str, Any] | Response:
    refused = check_json(request)
    if refused:
        return JSONResponse({"error": refused}, status_code=415)
    try:
        body = json.loads(await request.body() or b"{}")
    except json.JSONDecodeError as exc:
        return JSONResponse({"error": f"invalid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}"},
                            status_code=400)
    if not isinstance(body, dict):
        return JSONResponse({"error": "send a JSON object"}, status_code=400)
    return body


async def list_runs(request: Request) -> Response:
    limit = int(request.query_params.get("limit", 100))
    svc = _service(request)
    return JSONResponse({"runs": [_summary(svc, r) for r in svc.runs(limit)]})


async def get_run(request: Request) -> Response:
    svc = _service(request)
    run = svc.run(request.path_params["run_id"])
    return JSONResponse({**_summary(svc, run), "inputs": run["inputs"], "outputs": run["outputs"],
                         "pending": run["pending"], "approvals": svc.store.approvals(run["id"]),
                         "steps": [e for e in svc.steps(run["id"]) if e["event"] == "step_end"],
                         "artifacts": [p.name for p in svc.artifacts(run["id"])]})


async def start_run(request: Request) -> Response:
    body = await _body(request)
    if isinstance(body, Response):
        return body
    try:
        svc = _service(request)
        run_id = svc.start(svc.playbook(str(body.get("playbook", ""))), dict(body.get("inputs") or {}))
    except PlaybookError as exc:
        return JSONResponse({"error": str(exc)}, status_code=422)
    return JSONResponse({"run_id": run_id, "url": f"/runs/{run_id}"}, status_code=202)


async def decide(request: Request) -> Response:
    body = await _body(request)
    if isinstance(body, Response):
        return body
    try:
        decided = _service(request).decide(
            request.path_params["run_id"], str(body.get("action", "")), by=str(body.get("by") or "api"),
            comment=body.get("comment"), edits=body.get("edits") or {}, step=body.get("step"),
            visit=body.get("visit"))
    except FieldErrors as exc:
        return JSONResponse({"error": "edits do not fit the draft", "fields": exc.errors}, status_code=422)
    return JSONResponse(asdict(decided), status_code=200 if decided.repeated else 202)


async def resume_run(request: Request) -> Response:
    refused = check_json(request)
    if refused:
        return JSONResponse({"error": refused}, status_code=415)
    _service(request).resume(request.path_params["run_id"])
    return JSONResponse({"run_id": request.path_params["run_id"], "resumed": True}, status_code=202)


async def playbooks(request: Request) -> Response:
    found = [{"name": p.spec.name, "title": p.spec.title,
              "inputs": {n: s.model_dump(mode="json") for n, s in p.spec.inputs.items()},
              "triggers": [t.model_dump(mode="json") for t in p.spec.triggers]} for p in _service(request).playbooks()]
    return JSONResponse({"playbooks": found})


def api_errors(request: Request, exc: Exception) -> Response:
    if isinstance(exc, NotFound):
        return JSONResponse({"error": str(exc)}, status_code=404)
    if isinstance(exc, Conflict):
        return JSONResponse({"error": str(exc)}, status_code=409)
    raise exc


ROUTES = [
    Route("/api/runs", list_runs, methods=["GET"]),
    Route("/api/runs", start_run, methods=["POST"]),
    Route("/api/runs/{run_id}", get_run, methods=["GET"]),
    Route("/api/runs/{run_id}/decision", decide, methods=["POST"]),
    Route("/api/runs/{run_id}/resume", resume_run, methods=["POST"]),
    Route("/api/playbooks", playbooks, methods=["GET"]),
]
