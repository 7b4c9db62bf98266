"""`playbook serve`: the web page, the JSON API and the IM approval callbacks, in one Starlette app."""

from __future__ import annotations

import functools
import os
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runner.config import Project
from runner.i18n import _
from runner.server.security import LOOPBACK, BodyLimit, served_hosts, token_gate
from runner.server.service import Conflict, NotFound, Service


def server_token(project: Project) -> str | None:
    return os.environ.get("PLAYBOOK_SERVER_TOKEN") or project.settings.server.token or None


def create_app(project: Project, *, service: Service | None = None, bind: str | None = None) -> Starlette:
    from runner.server import api, im, pages

    metrics = Route("/metrics", metrics_page(project))  # first: the service's runner counts into the metrics
    svc = service or Service(project)
    server = project.settings.server
    hosts = served_hosts(server.base_url, bind, list(server.hosts))

    async def errors(request: Request, exc: Exception) -> Response:
        handler = api.api_errors if request.url.path.startswith("/api/") else pages.handle_errors
        return handler(request, exc)

    app = Starlette(routes=[*pages.ROUTES, *api.ROUTES, *im.ROUTES, metrics],
                    middleware=[Middleware(BodyLimit, max_bytes=int(server.max_upload_mb * 1e6)),
                                Middleware(BaseHTTPMiddleware, dispatch=token_gate(server_token(project), hosts))],
                    exception_handlers={NotFound: errors, Conflict: errors})
    app.state.service = svc
    return app


def metrics_page(project: Project) -> Any:
    """/metrics for Prometheus: the runs this server drove (its page's and API's) and the store's state now. Behind
    the token gate like every page: a scraper off this machine sends the token (`authorization` in its config)."""
    from runner.observe.metrics import StoreState, enable, registry_of
    from runner.team.queue import depths

    registry = registry_of(enable(), StoreState(
        project, functools.partial(depths, project) if project.settings.queue.broker else None))

    def page(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return page


def serve(project: Project, host: str, port: int) -> None:
    import uvicorn

    from runner.errors import PlaybookError

    if host not in LOOPBACK and not server_token(project):
        raise PlaybookError(_("binding to {host} exposes the server beyond this machine: set [server] token in "
                              "playbook.toml or PLAYBOOK_SERVER_TOKEN first").format(host=host))
    app = create_app(project, bind=host)
    config: dict[str, Any] = {"host": host, "port": port, "log_level": "warning"}
    uvicorn.run(app, **config)
