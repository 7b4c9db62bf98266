"""CPU turns for CPU-bound tools (text.cluster, text.dedupe, …), shared by every run on this machine.

Twenty runs started at once on two cores each ran `text.cluster` side by side; every one hit its step timeout,
though none was hung — each was waiting for a CPU. A tool registered `cpu_bound` now takes one of N turns (N = the
cores, or PLAYBOOK_CPU_SLOTS) before it starts, and its step timeout counts from then: a step that waits for a CPU
is not a step that hangs. The turns are lock files (flock) in a folder of this machine's temporary directory, so
they hold across processes and projects, and a process killed holding one gives it back with its death.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import random
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path


def slots() -> int:
    named = os.environ.get("PLAYBOOK_CPU_SLOTS", "")
    return max(1, int(named)) if named.isdigit() else max(1, os.cpu_count() or 1)


def _folder() -> Path:
    folder = Path(tempfile.gettempdir()) / f"playbook-cpu-slots-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def _try_take(folder: Path, count: int) -> int | None:
    """An open, locked slot file's descriptor, or None when all `count` are held."""
    for number in random.sample(range(count), count):  # spread the looks: not everyone on slot 0 first
        fd = os.open(folder / f"slot-{number}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return fd
    return None


@contextlib.asynccontextmanager
async def cpu_turn(*, waiting: Callable[[], None] | None = None) -> AsyncIterator[None]:
    """Hold one CPU turn of this machine for the block; `waiting` is called once if the turn is not free at once."""
    folder, count = _folder(), slots()
    told = False
    while (fd := _try_take(folder, count)) is None:
        if not told and waiting is not None:
            waiting()
            told = True
        await asyncio.sleep(0.05 + 0.05 * random.random())
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
