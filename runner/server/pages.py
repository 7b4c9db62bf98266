"""The web page: runs, one run, its approval form, starting a run from a form, schedules. Server-rendered."""

from __future__ import annotations

import json
import re
import secrets
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from runner import atomic
from runner.dsl.labels import input_title
from runner.dsl.validate import Playbook
from runner.engine.nodes.on_error import describe
from runner.errors import PlaybookError
from runner.i18n import _
from runner.server.security import check_form, csrf_token, with_csrf_cookie
from runner.server.service import Conflict, FieldErrors, NotFound, Service
from runner.wording import field_schema, fire_action, item_schema, label, number, status, statuses, usage_line


def shorten(text: str, limit: int) -> str:
    """At most `limit` characters, ending at a sentence or word break when one is near, with "…" when cut."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    breaks = [cut.rfind(mark) for mark in ("。", "；", "，", "、", ". ", "; ", ", ", " ")]
    at = max(breaks)
    return (cut[:at + 1] if at >= limit * 0.6 else cut).rstrip(" ，、；,;") + "…"


@lru_cache(maxsize=1)
def _templates() -> jinja2.Environment:
    folder = Path(__file__).parent / "templates"
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(folder), autoescape=True, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["number"] = number
    env.filters["shorten"] = shorten
    env.filters["code"] = lambda text: Markup("<code>{}</code>").format(text)
    env.globals.update(label=label, field_schema=field_schema, item_schema=item_schema, status=status,
                       describe=describe, fire_action=fire_action, _=_said, _html=_said_html)
    return env


def _said(message: str, **values: Any) -> str:
    """A template's `_("…", name=value)`: the message in the page's language, its `{name}`s filled (escaped by
    the page like any text)."""
    text = _(message)
    return text.format(**values) if values else text


def _said_html(message: str, **values: Any) -> Markup:
    """`_html("… {command} …", command="<code>…</code>"|safe)`: the message escaped, values marked safe kept."""
    return Markup(escape(_(message))).format(**values)


def _when(moment: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(moment)) if moment else "—"


def _seconds(value: float | None) -> str:
    return _("{seconds} s").format(seconds=number(value, 1)) if value is not None else "—"


def _progress(done: Any, total: Any) -> str:
    return _("{done}/{total} items").format(done=number(done), total=number(total))


def page(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    html = _templates().get_template(template).render(labels=statuses(), csrf=csrf_token(request), **context)
    return with_csrf_cookie(request, HTMLResponse(html, status_code=status))


def service(request: Request) -> Service:
    found: Service = request.app.state.service
    return found


async def runs_page(request: Request) -> Response:
    svc = service(request)
    currency = svc.project.settings.currency
    runs = [{**view, "started": _when(view["started_at"]), "duration": _seconds(view["duration"]),
             "cost_text": f"{number(view['cost'], 4)} {currency}"} for view in map(svc.view, svc.runs())]
    refresh = 5 if any(r["shown_status"] in ("running", "queued") for r in runs) else None
    return page(request, "runs.html", runs=runs, refresh=refresh)


async def run_page(request: Request) -> Response:
    svc = service(request)
    run = svc.view(svc.run(request.path_params["run_id"]))
    steps = [{**row, "progress": _progress(row["done"], row["total"]) if row["total"] is not None else None}
             for row in svc.step_rows(run["id"])] or _steps_from_events(svc, run["id"])
    for step in steps:  # a step the run stopped in (an approval it waits at, an error, a kill) says so
        if step["status"] == "running" and run["shown_status"] != "running":
            step["status"] = run["shown_status"]
    approvals = [{**a, "when": _when(a["at"])} for a in svc.store.approvals(run["id"])]
    schemas = svc.schemas(run)
    artifacts = svc.artifacts(run["id"])
    # an output naming a file of the run (a report, a workbook) is shown as its download link, not a server path
    links = {str(path): f"/runs/{run['id']}/files/{path.name}" for a in artifacts for path in (a, a.resolve())}
    return page(request, "run.html", run=run, steps=steps, approvals=approvals, artifacts=artifacts,
                schemas=schemas["steps"], inputs_schema=schemas["inputs"],
                outputs_schema=schemas["outputs"], links=links,
                started=_when(run["started_at"]), duration=_seconds(run["duration"]),
                usage=usage_line(run["tokens_in"] + run["tokens_out"], run["cost"], svc.project.settings.currency),
                refresh=3 if run["shown_status"] in ("running", "queued") else None)


def _steps_from_events(svc: Service, run_id: str) -> list[dict[str, Any]]:
    """A run recorded before the steps table: its steps from events.jsonl."""
    steps: list[dict[str, Any]] = []
    progress: dict[str, str] = {}
    asked: dict[str, Any] = {}
    for event in svc.steps(run_id):
        if event["event"] == "map_progress":
            progress[event["step"]] = _progress(event["done"], event["total"])
        elif event["event"] in ("tool_call", "llm_call"):  # what the step was given: its first call's
            asked.setdefault(event["step"], event.get("args") or event.get("prompt"))
        elif event["event"] == "step_end":
            given = asked.pop(event["step"], None)
            steps.append({**event, "progress": progress.get(event["step"]), "given": given})
    return steps


async def resume_post(request: Request) -> Response:
    form = await _posted_form(request)
    if isinstance(form, Response):
        return form
    service(request).resume(request.path_params["run_id"])
    return RedirectResponse(f"/runs/{request.path_params['run_id']}", status_code=303)


# A run's HTML report opens in the browser, but sandboxed: no scripts, no requests beyond its own images and
# styles, no forms — a report built from scraped pages or model text cannot act as the server's own page.
REPORT_CSP = ("default-src 'none'; img-src data: 'self'; style-src 'unsafe-inline'; font-src data:; "
              "sandbox; base-uri 'none'; form-action 'none'")
INLINE_TEXT = {".md": "text/plain", ".txt": "text/plain", ".json": "application/json", ".csv": "text/csv",
               ".jsonl": "application/json"}


async def artifact(request: Request) -> Response:
    path = service(request).artifact(request.path_params["run_id"], request.path_params["name"])
    suffix = path.suffix.lower()
    if suffix in (".html", ".htm"):
        return FileResponse(path, media_type="text/html; charset=utf-8", content_disposition_type="inline",
                            filename=path.name, headers={"Content-Security-Policy": REPORT_CSP,
                                                         "X-Content-Type-Options": "nosniff"})
    if suffix in (".png", ".jpg", ".jpeg", ".svg", ".gif", ".webp"):
        headers = {"Content-Security-Policy": REPORT_CSP, "X-Content-Type-Options": "nosniff"}
        return FileResponse(path, content_disposition_type="inline", filename=path.name, headers=headers)
    if suffix in INLINE_TEXT:  # read in the browser as text, never run
        return FileResponse(path, media_type=f"{INLINE_TEXT[suffix]}; charset=utf-8", content_disposition_type="inline",
                            filename=path.name, headers={"X-Content-Type-Options": "nosniff"})
    return FileResponse(path, filename=path.name)


FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" '
           'fill="#2f3e6e"/><path d="M4 3h5a3 3 0 0 1 0 6H6v4H4z" fill="#fff"/></svg>')


async def favicon(request: Request) -> Response:
    return Response(FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})


def _editable_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=2)


async def approval_page(request: Request, errors: dict[str, str] | None = None,
                        submitted: dict[str, Any] | None = None, status: int = 200) -> Response:
    run = service(request).run(request.path_params["run_id"])
    if run["status"] != "waiting" or not run["pending"]:
        return RedirectResponse(f"/runs/{run['id']}", status_code=303)
    pending = run["pending"]
    draft = pending["draft"] if isinstance(pending["draft"], dict) else {}
    submitted = submitted or {}
    values = {n: submitted.get(f"edit_{n}", _editable_text(draft.get(n))) for n in pending.get("editable") or []}
    rows = {n: min(30, max(3, values[n].count("\n") + 2)) for n in values}
    field_schemas = {n: field_schema(pending.get("schema"), n) for n in pending.get("editable") or []}
    texts = {n: isinstance(draft.get(n), str) for n in values}  # posted as text (approval_post), edited as text
    return page(request, "approval.html", status, run=run, pending=pending, values=values, rows=rows,
                field_schemas=field_schemas, texts=texts, sources=pending.get("sources") or [],
                errors=errors or {}, comment=submitted.get("comment", ""), by=submitted.get("by", ""),
                deadline=_when(pending.get("deadline")))


async def _posted_form(request: Request) -> dict[str, Any] | Response:
    """The submitted form, or a 403 when its CSRF token or origin is wrong."""
    form = dict(await request.form())
    refused = check_form(request, form)
    return PlainTextResponse(refused, status_code=403) if refused else form


async def approval_post(request: Request) -> Response:
    svc = service(request)
    run = svc.run(request.path_params["run_id"])
    form = await _posted_form(request)
    if isinstance(form, Response):
        return form
    pending = run["pending"] or {}
    draft: dict[str, Any] = pending["draft"] if isinstance(pending.get("draft"), dict) else {}
    edits: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name in pending.get("editable") or []:
        if f"edit_{name}" not in form:
            continue  # not sent: unchanged
        text = str(form[f"edit_{name}"]).replace("\r\n", "\n")  # browsers send CRLF from textareas
        if text == _editable_text(draft.get(name)):
            continue
        if isinstance(draft.get(name), str):
            edits[name] = text
            continue
        try:
            edits[name] = json.loads(text)
        except json.JSONDecodeError as exc:
            errors[name] = _("not valid JSON: line {line} column {column}, {reason}").format(
                line=exc.lineno, column=exc.colno, reason=exc.msg)
    action = str(form.get("action", "approve"))
    comment = str(form.get("comment", "")).strip() or None
    if action == "reject" and not comment:
        errors[""] = _("write a comment to reject: the model redoes the work by it")
    if errors:
        return await approval_page(request, errors, form, status=422)
    try:
        decided = svc.decide(run["id"], action, by=str(form.get("by") or _("web page review")), comment=comment,
                             edits=edits, step=str(form.get("step")), visit=int(str(form.get("visit", 0))))
    except FieldErrors as exc:
        return await approval_page(request, exc.errors, form, status=422)
    if decided.repeated:  # a stale page: someone (or a chat card) decided this draft already
        return page(request, "message.html", 409, heading=_("This draft was decided already"),
                    text=_("{by} decided this draft already ({decision}); your decision was not applied.").format(
                        by=decided.by, decision=status(decided.action)),
                    link=f"/runs/{run['id']}", link_text=_("See where the run is now"))
    return RedirectResponse(f"/runs/{run['id']}", status_code=303)


async def playbooks_page(request: Request) -> Response:
    return page(request, "playbooks.html", playbooks=service(request).playbooks())


async def start_page(request: Request) -> Response:
    playbook = service(request).playbook(request.path_params["name"])
    return _start_form(request, playbook, 200, {}, {})


def _start_form(request: Request, playbook: Playbook, status: int, values: dict[str, Any],
                errors: dict[str, str]) -> Response:
    titles = {name: input_title(name, spec) for name, spec in playbook.spec.inputs.items()}
    return page(request, "start.html", status, playbook=playbook, titles=titles, values=values, errors=errors)


async def start_post(request: Request) -> Response:
    svc = service(request)
    playbook = svc.playbook(request.path_params["name"])
    form = await _posted_form(request)
    if isinstance(form, Response):
        return form
    given: dict[str, Any] = {}
    for name, spec in playbook.spec.inputs.items():
        upload = form.get(f"upload_{name}")
        if spec.type == "file" and isinstance(upload, UploadFile) and upload.filename:
            given[name] = str(await _save_upload(svc, upload))
            continue
        raw = str(form.get(f"in_{name}", "")).strip()
        if spec.type == "boolean":
            given[name] = raw == "true"
        elif raw:
            given[name] = raw
    try:
        run_id = svc.start(playbook, given)
    except PlaybookError as exc:
        errors: dict[str, str] = {}
        for diagnostic in exc.diagnostics:  # "input 'limit': expected an integer" → next to that field
            key = diagnostic.about if diagnostic.about in playbook.spec.inputs else ""
            errors[key] = errors[key] + _("; ") + diagnostic.message if key in errors else diagnostic.message
        values = {n[3:]: v for n, v in form.items() if n.startswith("in_")}
        return _start_form(request, playbook, 422, values, errors)
    return RedirectResponse(f"/runs/{run_id}", status_code=303)


async def _save_upload(svc: Service, upload: UploadFile) -> Path:
    """An uploaded input file, kept under .playbook/uploads/ (or [store] artifacts, which workers see too) with a
    name no client can steer elsewhere."""
    safe = re.sub(r"[^\w.\-]+", "_", Path(upload.filename or "upload").name).lstrip(".") or "upload"
    suffix = Path(safe).suffix[:16]
    while len(safe.encode()) > 180:  # names past the filesystem's 255 bytes: keep the start and the suffix
        safe = Path(safe).stem[:-8] + suffix
    folder = svc.project.artifacts_dir / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}-{safe}"
    with atomic.replacing(target) as temporary, temporary.open("wb") as written:  # in chunks: memory stays flat
        while chunk := await upload.read(1 << 20):
            written.write(chunk)
    return target


async def schedules_page(request: Request) -> Response:
    from runner.dsl.cron import local_text
    from runner.schedule.scheduler import discover

    svc = service(request)
    found, problems = discover(svc.project)
    rows = []
    for item in found:
        state = svc.store.schedule_state(item.id)
        fires = svc.store.schedule_fires(item.id, limit=1)
        rows.append({"id": item.id, "playbook": item.playbook.name, "cron": item.cron, "timezone": item.timezone,
                     "catch_up": item.catch_up, "paused": bool(state and state["paused"]),
                     "next": local_text(state["next_due"], item.timezone) if state else
                     _("the scheduler has not started"),
                     "last": fires[0] if fires else None})
    return page(request, "schedules.html", schedules=rows, problems=problems)


def handle_errors(request: Request, exc: Exception) -> Response:
    if isinstance(exc, NotFound):
        return PlainTextResponse(f"404: {exc}", status_code=404)
    if isinstance(exc, Conflict):
        return PlainTextResponse(f"409: {exc}", status_code=409)
    raise exc


ROUTES = [
    Route("/", runs_page),
    Route("/favicon.ico", favicon),
    Route("/runs/{run_id}", run_page),
    Route("/runs/{run_id}/files/{name}", artifact),
    Route("/runs/{run_id}/approval", approval_page, methods=["GET"]),
    Route("/runs/{run_id}/approval", approval_post, methods=["POST"]),
    Route("/runs/{run_id}/resume", resume_post, methods=["POST"]),
    Route("/playbooks", playbooks_page),
    Route("/start/{name}", start_page, methods=["GET"]),
    Route("/start/{name}", start_post, methods=["POST"]),
    Route("/schedules", schedules_page),
]
