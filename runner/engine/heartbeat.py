"""A driven run's sign of life, written wherever the run is driven (CLI, scheduler, web service, worker).

Every `[queue] heartbeat` seconds a thread writes the time on the run's row — a thread, so that a long synchronous
stretch of the run (a big sheet) does not look like death. But a thread beats even when the run itself is
wedged, so each beat is given only when the run's event loop answered a ping within `stuck_after` seconds: a
process alive but making no progress stops beating, and after STALE (runner/engine/liveness.py) any other
process may take the run over (`playbook resume`, a team server's scheduler). Should the wedged process wake up,
its steps' next check finds the run no longer its own and stops it (`RunTakenOver`, RunContext.check_cancel)
before it asks anything more or writes over the new owner's record; the beats stop too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from types import TracebackType

from runner.engine import liveness
from runner.store import Store

log = logging.getLogger("playbook.heartbeat")


class Heartbeat:
    def __init__(self, store: Store, run_id: str, *, stuck_after: float) -> None:
        self.store, self.run_id, self.stuck_after = store, run_id, stuck_after
        self._answered = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._beat, args=(loop,), name=f"heartbeat-{self.run_id}",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _pong(self) -> None:
        self._answered = time.monotonic()

    def _beat(self, loop: asyncio.AbstractEventLoop) -> None:
        me = liveness.this_process()
        stuck = False
        while not self._stop.wait(liveness.HEARTBEAT):
            try:
                loop.call_soon_threadsafe(self._pong)
            except RuntimeError:  # the loop closed: the run is no longer driven here
                return
            silent = time.monotonic() - self._answered
            if silent > self.stuck_after:
                if not stuck:
                    log.warning("run %s: no progress for %.0f s; no longer claiming it, so another process may "
                                "take it over", self.run_id, silent)
                stuck = True
                continue
            stuck = False
            with contextlib.suppress(Exception):  # a missed beat is not an error; a lost store shows elsewhere
                if not self.store.heartbeat(self.run_id, me["pid"], me["host"]):
                    return  # another process took the run over
