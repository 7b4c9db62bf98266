"""The Celery application of a team server, and handing run work to it.

With `[queue] broker = "redis://…"`, whoever starts, resumes or decides a run — `playbook run`, the web page,
the API, an IM callback, the scheduler — writes the run's new state to the store (status `queued`) and sends
one message; a `playbook worker` takes the message, claims the run in the store (a compare-and-set, so a
message delivered twice runs it once) and drives it. The message carries ids only: the store holds the truth.

Delivery: `acks_late` with `reject_on_worker_lost` — a message is acknowledged when its work ended, so work
whose worker died (kill -9, a lost machine) is handed to another worker: at once when a pool process dies,
after `[queue] visibility_timeout` when the whole worker vanished. Map chunks are also re-offered by their
run's coordinator as soon as their holder is seen dead (runner/team/chunks.py).
"""

from __future__ import annotations

import functools
import time
from typing import Any

from runner.config import Project
from runner.dsl.validate import Playbook
from runner.store import Store

RUNS_QUEUE = "playbook.runs"  # start, resume, decisions, scheduled starts
CHUNKS_QUEUE = "playbook.chunks"  # parts of distributed maps
QUEUES = (RUNS_QUEUE, CHUNKS_QUEUE)


def broker(project: Project) -> str | None:
    return project.settings.queue.broker


@functools.cache
def celery_app(broker_url: str, visibility_timeout: float) -> Any:
    """One Celery app per broker. Senders name tasks (send_task); a worker registers them (runner.team.work)."""
    from celery import Celery

    app = Celery("playbook", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        task_ignore_result=True, task_serializer="json", accept_content=["json"],
        task_default_queue=RUNS_QUEUE, broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": visibility_timeout},
        worker_hijack_root_logger=False, worker_send_task_events=False)
    return app


def app_for(project: Project) -> Any:
    url = broker(project)
    if not url:
        raise RuntimeError("no [queue] broker configured")
    return celery_app(url, project.settings.queue.visibility_timeout)


def send(project: Project, kind: str, run_id: str, decision: dict[str, Any] | None = None) -> None:
    app_for(project).send_task("playbook.work", kwargs={"kind": kind, "run_id": run_id, "decision": decision},
                               queue=RUNS_QUEUE)


def send_chunk(project: Project, run_id: str, step: str, visit: int, number: int) -> None:
    app_for(project).send_task("playbook.chunk", kwargs={"run_id": run_id, "step": step, "visit": visit,
                                                         "number": number}, queue=CHUNKS_QUEUE)


def enqueue_start(project: Project, store: Store, playbook: Playbook, inputs: dict[str, Any], run_id: str,
                  max_cost: float | None = None) -> None:
    """Record a new run as `queued` (pages list it at once) and hand it to the workers."""
    store.create_run(id=run_id, playbook=playbook.spec.name, path=str(playbook.path), source=playbook.loaded.text,
                     status="queued", started_at=time.time(), inputs=inputs, max_cost=max_cost)
    send(project, "start", run_id)


def enqueue_continue(project: Project, store: Store, run_id: str, decision: dict[str, Any] | None = None) -> None:
    """Hand a run this process has just claimed (a decision recorded, an interrupted run taken over) to the
    workers: it becomes `queued`, owned by nobody, until a worker claims it."""
    store.update_run(run_id, status="queued", pid=None, pid_started=None, host=None, heartbeat=None)
    send(project, "resume", run_id, decision)
