"""A folder served over HTTP on loopback: recorded pages, feeds and fixtures for tools under test."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

from runner.testing.loopback import LoopbackHTTPServer


@contextlib.contextmanager
def serve_directory(folder: Path, *, headers: dict[str, str] | None = None) -> Iterator[str]:
    """Serve a folder over HTTP on loopback (pages, feeds, fixtures); yields the base URL."""

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

        def end_headers(self) -> None:
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            super().end_headers()

    httpd = LoopbackHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
