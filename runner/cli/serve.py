"""`playbook serve`: the web page, the JSON API and the IM approval callbacks."""

from __future__ import annotations

from typing import Annotated

import typer

from runner.cli.app import app
from runner.cli.common import guard, out, project_here
from runner.cli.observing import LogJson, LogLevel, start_logs
from runner.i18n import _


@app.command()
def serve(host: Annotated[str, typer.Option(help=_("address to bind; anything but loopback needs a token"))
                          ] = "127.0.0.1",
          port: Annotated[int, typer.Option(help=_("port"))] = 8600,
          log_json: LogJson = None, log_level: LogLevel = "INFO") -> None:
    """Serve runs, approvals, run forms and schedules on http://HOST:PORT (Chinese interface), and Prometheus
    metrics on /metrics."""
    from runner.server import serve as run_server

    def start() -> None:
        project = project_here()
        start_logs(project, log_json, log_level, worker=f"serve@{host}:{port}")
        out.print(_("playbook server on http://{host}:{port} (Ctrl-C to stop)").format(host=host, port=port),
                  markup=False)
        run_server(project, host, port)

    guard(start)
