"""The fake OpenAI-compatible server in a process of its own, so its CPU is not counted as ours."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator

from runner.testing.servers import free_port


@contextlib.contextmanager
def fake_server(latency: float) -> Iterator[str]:
    """`python -m runner.testing` answering after `latency` seconds; yields its base URL."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "runner.testing", "--port", str(port),
                               "--latency", str(latency)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        server.stdout.readline()  # "fake OpenAI-compatible server on …": it listens
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.terminate()
        server.wait()
