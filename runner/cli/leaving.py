"""Leaving the process by `os._exit` (the command's fast exit, a Ctrl-C): what it wrote is handed to the system
first. Its own module, importing nothing heavy, so both the app and the Ctrl-C handler use it."""

from __future__ import annotations

import contextlib
import sys


def flush_output() -> None:
    """What the process has written but not yet handed to the system: before it leaves by `os._exit`."""
    if (events := sys.modules.get("runner.engine.events")) is not None:
        events.flush_pending()  # a run's last events lines, written at the end of their loop turn
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader that went away (`| head`), a closed stream
            stream.flush()
