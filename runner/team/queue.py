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
from runner.errors import PlaybookError
from runner.i18n import _
from runner.store import Store

RUNS_QUEUE = "playbook.runs"  # start, resume, decisions, scheduled starts
CHUNKS_QUEUE = "playbook.chunks"  # parts of distributed maps
QUEUES = (RUNS_QUEUE, CHUNKS_QUEUE)


def broker(project: Project) -> str | None:
    return project.settings.queue.broker


def depths(project: Project) -> dict[str, int]:
    """Messages waiting in each queue for a worker; raises `unreachable` when Redis does not answer."""
    import redis

    client = redis.Redis.from_url(broker(project) or "", socket_timeout=5)
    try:
        return {name: int(client.llen(name)) for name in QUEUES}
    except redis.RedisError as exc:
        raise unreachable(project, exc) from None
    finally:
        client.close()


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
        raise RuntimeError(_("no [queue] broker configured"))
    return celery_app(url, project.settings.queue.visibility_timeout)


def unreachable(project: Project, exc: BaseException) -> PlaybookError:
    """The broker did not answer: say which one (without a password) and what to check."""
    from runner.store.postgres import safe_url

    reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return PlaybookError(_("cannot reach the queue at {url} ({reason}); check that Redis is running and [queue] "
                           "broker in playbook.toml (or PLAYBOOK_BROKER_URL)").format(
        url=safe_url(broker(project) or ""), reason=reason.rstrip(".")))


def _send(project: Project, task: str, queue: str, kwargs: dict[str, Any]) -> None:
    try:
        app_for(project).send_task(task, kwargs=kwargs, queue=queue,
                                   retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5})
    except Exception as exc:  # kombu's or redis's connection errors, whichever layer noticed first
        raise unreachable(project, exc) from None


def send(project: Project, kind: str, run_id: str, decision: dict[str, Any] | None = None) -> None:
    _send(project, "playbook.work", RUNS_QUEUE, {"kind": kind, "run_id": run_id, "decision": decision})


def send_chunk(project: Project, run_id: str, step: str, visit: int, number: int) -> None:
    _send(project, "playbook.chunk", CHUNKS_QUEUE, {"run_id": run_id, "step": step, "visit": visit,
                                                    "number": number})


def enqueue_start(project: Project, store: Store, playbook: Playbook, inputs: dict[str, Any], run_id: str,
                  max_cost: float | None = None) -> None:
    """Record a new run as `queued` (pages list it at once) and hand it to the workers."""
    store.create_run(id=run_id, playbook=playbook.spec.name, path=str(playbook.path), source=playbook.loaded.text,
                     status="queued", started_at=time.time(), inputs=inputs, max_cost=max_cost)
    _or_stranded(project, store, run_id, "start", None)


def enqueue_continue(project: Project, store: Store, run_id: str, decision: dict[str, Any] | None = None) -> None:
    """Hand a run this process has just claimed (a decision recorded, an interrupted run taken over) to the
    workers: it becomes `queued`, owned by nobody, until a worker claims it."""
    store.update_run(run_id, status="queued", pid=None, pid_started=None, host=None, heartbeat=None)
    _or_stranded(project, store, run_id, "resume", decision)


def _or_stranded(project: Project, store: Store, run_id: str, kind: str, decision: dict[str, Any] | None) -> None:
    """Send the run's message; if the broker is down, the run is not left `queued` for a message that never
    went: it becomes failed with the reason, and `playbook resume` sends it again once Redis is back (a
    recorded decision is applied then)."""
    try:
        send(project, kind, run_id, decision)
    except PlaybookError as exc:
        store.update_run(run_id, status="failed", ended_at=time.time(),
                         error=_("{exc}; then: playbook resume {run_id}").format(exc=exc, run_id=run_id))
        raise
