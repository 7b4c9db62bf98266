"""The HTTP server the test doubles run on loopback: a thread per connection, and a listen backlog that fits
the concurrency tests use (the standard library's 5 makes plain clients time out at 50–100 connections)."""

from __future__ import annotations

from http.server import ThreadingHTTPServer
from typing import Any


class LoopbackHTTPServer(ThreadingHTTPServer):
    request_queue_size = 1024
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-request (a timed-out test, a cancelled run) is not an error to print."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)
