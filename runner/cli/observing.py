"""The options every long-running command shares for its logs and metrics, and turning them on (runner/observe)."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from runner.errors import PlaybookError
from runner.i18n import _

LogJson = Annotated[bool | None, typer.Option(
    "--log-json/--log-console", help=_("log lines as JSON (for a file or a log shipper) or for people; default: "
                                       "for people in a terminal, JSON otherwise"), show_default=False)]
RunLogJson = Annotated[bool, typer.Option("--log-json", help=_("also write the run's events as JSON log lines on "
                                                                "stderr (for a log shipper)"))]
LogLevel = Annotated[str, typer.Option(help=_("log level: DEBUG, INFO, WARNING, ERROR"))]
MetricsPort = Annotated[int, typer.Option(help=_("serve Prometheus metrics on this port (/metrics); 0: none"))]
MetricsHost = Annotated[str, typer.Option(help=_("address the metrics port binds"))]


def start_logs(project: Any, json_lines: bool | None, level: str, worker: str | None = None) -> bool:
    """Structured logs for this process, scrubbed of the project's keys and the server's token; whether as JSON."""
    from runner.observe import logs

    if level.upper() not in logs.LEVELS:
        raise PlaybookError(_("--log-level {level}: use one of {levels}").format(
            level=level, levels=", ".join(logs.LEVELS)))
    secrets = [*project.secret_values(), *filter(None, [os.environ.get("PLAYBOOK_SERVER_TOKEN"),
                                                         project.settings.server.token])]
    return logs.configure(json_lines=json_lines, level=level, secrets=secrets, worker=worker)


def serve_metrics(port: int, host: str) -> None:
    """Count this process's runs and serve them on http://HOST:PORT/metrics (a scheduler's)."""
    from prometheus_client import start_http_server

    from runner.observe.metrics import enable, registry_of

    registry = registry_of(enable())
    _listen(lambda: start_http_server(port, addr=host, registry=registry), port, host)


def serve_pool_metrics(port: int, host: str) -> None:
    """A worker's metrics: its pool processes (forked after this) each write their counts to a folder of their
    own files — Prometheus's multiprocess mode — and this process serves their sum."""
    import atexit
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="playbook-worker-metrics-")
    atexit.register(shutil.rmtree, folder, True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    from prometheus_client import CollectorRegistry, start_http_server, values
    from prometheus_client.multiprocess import MultiProcessCollector

    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call] # chosen at import: right even if something imported it earlier
    from runner.observe.metrics import enable

    enable()
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    _listen(lambda: start_http_server(port, addr=host, registry=registry), port, host)


def _listen(start: Any, port: int, host: str) -> None:
    try:
        start()
    except OSError as exc:
        raise PlaybookError(_("--metrics-port {port}: cannot listen on {host}:{port} ({reason}); choose a free "
                              "port").format(port=port, host=host, reason=exc.strerror or exc)) from None
