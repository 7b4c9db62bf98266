"""Several suites side by side, each in a process of its own, so `playbook eval evals/` uses the machine's cores.

A suite's cases already run at once in one event loop (`--concurrency`); that overlaps waiting, not CPU —
templates, validation, tools and reports are Python, one core. Suites share nothing but the project's store
(SQLite waits for other writers; Postgres serves many), each with its own cassette, case folders, reports and
baseline, so a suite is the unit handed to a process. Processes are spawned, not forked: the parent may hold
threads and open connections a fork would copy half-made. One suite, or `--jobs 1`, runs in this process.
"""

from __future__ import annotations

import functools
import gc
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.errors import Diagnostic, PlaybookError

MOST_JOBS_BY_DEFAULT = 4  # a suite process holds 300-450 MB: more at once only when asked (--jobs)


@dataclass(frozen=True)
class SuiteOutcome:
    """What the command shows of a suite: its report and files, or the suite error that stopped it."""

    path: Path
    report: dict[str, Any] | None = None
    files: dict[str, Path] = field(default_factory=dict)
    failed: bool = False
    error: list[Diagnostic] | None = None  # a PlaybookError's diagnostics (they cross a process boundary)


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):  # the cores this process may use (a container's share), not the machine's
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_jobs(suites: int) -> int:
    return max(1, min(suites, usable_cores(), MOST_JOBS_BY_DEFAULT))


def evaluate_suites(paths: list[Path], options: Any, *, jobs: int,
                    progress: Callable[[str, str], None]) -> Iterator[SuiteOutcome]:
    """Each suite's outcome, in the order the suites were given, as soon as it and those before it are done.
    `options` is an `EvalOptions`; `progress(suite, line)` is called in this process for in-process suites, and
    a suite in a process of its own writes its lines to the shared stderr itself."""
    if jobs <= 1 or len(paths) <= 1:
        for path in paths:
            yield evaluate_one(path, options, functools.partial(progress, path.stem))
        return
    context = multiprocessing.get_context("spawn")
    pool = context.Pool(min(jobs, len(paths)), initializer=_ignore_ctrl_c)
    try:
        yield from pool.imap(_in_child, [(path, options) for path in paths])
    except BaseException:  # Ctrl-C, an error, or the caller stopped reading: the children are ended
        pool.terminate()
        pool.join()
        raise
    # the children leave on their own, running their exit handlers (a child killed instead leaves behind what its
    # libraries registered, and multiprocessing's resource tracker warns of "leaked semaphore objects")
    pool.close()
    pool.join()
    # the pool's own semaphores are released when it is collected; the command ends with os._exit
    # (runner/cli/app.py), which collects nothing
    del pool
    gc.collect()


def evaluate_one(path: Path, options: Any, progress: Callable[[str], None]) -> SuiteOutcome:
    from runner.config import load_project
    from runner.evals.session import evaluate_suite

    try:
        # the parent's project: a child inherits its working folder and PLAYBOOK_PROJECT (the runs it drives are
        # assembled by runner.assembly, which sets the rest up from it)
        result = evaluate_suite(path, options, project=load_project(), progress=progress)
    except PlaybookError as exc:
        return SuiteOutcome(path, error=exc.diagnostics)
    return SuiteOutcome(path, result.report, result.files, result.failed)


def _in_child(job: tuple[Path, Any]) -> SuiteOutcome:
    path, options = job

    def progress(line: str) -> None:
        print(f"  {path.stem}: {line}", file=sys.stderr, flush=True)

    return evaluate_one(path, options, progress)


def _ignore_ctrl_c() -> None:
    """Ctrl-C reaches every process of the terminal's group: the parent alone answers it, ending the children,
    so no child prints a traceback of its own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
