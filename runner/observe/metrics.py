"""Prometheus metrics: what the runs of this process did (counters and histograms fed by the run hooks and the
signals), and what the store and the queue hold now (read when Prometheus scrapes `playbook serve`'s /metrics).

A worker's runs happen in its pool processes: `serve_worker_metrics` sets Prometheus's multiprocess folder before
the pool forks, each process writes its own file, and the worker's main process serves the sum on its port.
The names are documented in the README ("Watching a team server") and held by tests/test_observe.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from runner import observe, signals
from runner.engine.events import Hooks
from runner.errors import PlaybookError

if TYPE_CHECKING:
    from runner.config import Project

# an LLM call or a step takes from tens of milliseconds (a cached reply, a tool) to many minutes (a 10,000-item map)
SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)


class RunMetrics(Hooks):
    """Counters and histograms of the runs this process drives, by playbook, step, model alias and tool."""

    def __init__(self, registry: CollectorRegistry | None) -> None:  # None: served through registry_of
        def counter(name: str, doc: str, labels: list[str]) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        def histogram(name: str, doc: str, labels: list[str]) -> Histogram:
            return Histogram(name, doc, labels, buckets=SECONDS, registry=registry)

        self.runs_started = counter("playbook_runs_started", "Runs started or resumed by this process",
                                    ["playbook"])
        self.runs_ended = counter("playbook_runs_ended", "Runs that stopped in this process, by how: done, "
                                  "failed, waiting (for an approval), interrupted, cancelled", ["playbook", "status"])
        self.step_seconds = histogram("playbook_step_seconds", "Time a step took, by its end status",
                                      ["playbook", "step", "status"])
        self.llm_calls = counter("playbook_llm_calls", "LLM requests sent (cached=true: answered from the reply "
                                 "cache, nothing sent)", ["model", "cached"])
        self.llm_seconds = histogram("playbook_llm_call_seconds", "Time from asking to the parsed answer, retries "
                                     "and waits for the model's rate limit included", ["model"])
        self.llm_tokens = counter("playbook_llm_tokens", "Tokens, by direction: in (prompt) or out (completion)",
                                  ["model", "direction"])
        self.llm_cost = counter("playbook_llm_cost", "Cost of LLM calls in the project's currency", ["model"])
        self.llm_retries = counter("playbook_llm_retries", "LLM requests tried again, by why: rate_limited (429), "
                                   "server (5xx), timeout, connection, malformed", ["model", "reason"])
        self.tool_calls = counter("playbook_tool_calls", "Tool calls made (fixtures in evals included)", ["tool"])
        self.tool_seconds = histogram("playbook_tool_call_seconds", "Time a tool call took", ["tool"])
        self.approvals = counter("playbook_approvals", "Approvals requested and decided, by action: requested, "
                                 "approve, reject", ["playbook", "action"])
        self.chunks = counter("playbook_map_chunks", "Parts of distributed maps, by what happened: started, done, "
                              "failed, taken over (from a dead or stuck worker)", ["status"])
        self.schedule_fires = counter("playbook_schedule_fires", "Schedule due times, by action: started, "
                                      "skipped: overlap, skipped: missed, error", ["schedule", "action"])
        self.schedule_lag = histogram("playbook_schedule_lag_seconds", "How late a scheduled run started after "
                                      "its due time", ["schedule"])
        self.playbooks = observe.RunPlaybooks()

    def _playbook(self, event: dict[str, Any]) -> str:
        return self.playbooks.of(event) or "unknown"

    def on_run_start(self, **event: Any) -> None:
        self.playbooks.started(event)
        self.runs_started.labels(str(event.get("playbook") or "unknown")).inc()

    def on_step_end(self, **event: Any) -> None:
        self.step_seconds.labels(self._playbook(event), str(event.get("step")), str(event.get("status"))).observe(
            float(event.get("seconds") or 0))

    def on_llm_call(self, **event: Any) -> None:
        model, cached = str(event.get("model")), bool(event.get("cached"))
        self.llm_calls.labels(model, "true" if cached else "false").inc(1 if cached else event.get("calls") or 1)
        self.llm_seconds.labels(model).observe(float(event.get("seconds") or 0))
        if not cached:
            self.llm_tokens.labels(model, "in").inc(event.get("tokens_in") or 0)
            self.llm_tokens.labels(model, "out").inc(event.get("tokens_out") or 0)
            self.llm_cost.labels(model).inc(event.get("cost") or 0)

    def on_tool_call(self, **event: Any) -> None:
        tool = str(event.get("tool"))
        self.tool_calls.labels(tool).inc()
        self.tool_seconds.labels(tool).observe(float(event.get("seconds") or 0))

    def on_approval(self, **event: Any) -> None:
        self.approvals.labels(self._playbook(event), str(event.get("action"))).inc()

    def on_map_chunk(self, **event: Any) -> None:
        self.chunks.labels(str(event.get("status"))).inc()

    def on_run_end(self, **event: Any) -> None:
        self.runs_ended.labels(self._playbook(event), str(event.get("status"))).inc()
        self.playbooks.ended(event)

    def heard(self, name: str, **fields: Any) -> None:
        """The signals from outside a run's hooks: a retried model call, a schedule's due time."""
        if name == "retry":
            self.llm_retries.labels(str(fields.get("model")), str(fields.get("reason"))).inc()
        elif name == "schedule_fired":
            schedule = str(fields.get("schedule"))
            self.schedule_fires.labels(schedule, str(fields.get("action"))).inc()
            if fields.get("action") == "started":
                self.schedule_lag.labels(schedule).observe(max(0.0, float(fields.get("lag") or 0)))


_enabled: list[RunMetrics] = []


def enable() -> RunMetrics:
    """Count this process's runs (once per process, however often asked: a counter is the process's). In a
    worker's pool (PROMETHEUS_MULTIPROC_DIR set) the counts go to the pool's files instead."""
    if not _enabled:
        _enabled.append(RunMetrics(None))
    metrics = _enabled[0]
    if metrics not in observe.process_hooks():  # (again after observe.reset)
        observe.add_hook(metrics)
        signals.listen(metrics.heard)
    return metrics


def registry_of(metrics: RunMetrics, *more: Collector) -> CollectorRegistry:
    """A registry to serve: the process's run metrics and `more`."""
    registry = CollectorRegistry()
    for collector in (*(v for v in vars(metrics).values() if isinstance(v, Counter | Histogram)), *more):
        registry.register(collector)
    return registry


class StoreState(Collector):
    """What is true now, read at each scrape: runs by status, approvals waiting and the oldest one's age, the
    queues' depth. One process (the server) reports these, so they are never counted twice."""

    def __init__(self, project: Project, queue_depths: Callable[[], dict[str, int]] | None = None) -> None:
        self.project = project
        self.queue_depths = queue_depths  # None: no queue (a server without workers)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from runner.store import open_store

        runs = GaugeMetricFamily("playbook_runs", "Top-level runs in the store now, by status", labels=["status"])
        waiting = GaugeMetricFamily("playbook_approvals_waiting", "Runs waiting for an approval now")
        oldest = GaugeMetricFamily("playbook_approval_oldest_wait_seconds",
                                   "How long the oldest waiting approval has waited (0: none waits)")
        store = open_store(self.project)
        try:
            for status, count in sorted(store.run_counts().items()):
                runs.add_metric([status], count)
            since = store.waiting_since()
        finally:
            store.close()
        waiting.add_metric([], len(since))
        oldest.add_metric([], max(0.0, time.time() - min(since)) if since else 0.0)
        yield from (runs, waiting, oldest)
        if self.queue_depths is not None:
            depth = GaugeMetricFamily("playbook_queue_depth", "Messages waiting in each queue for a worker",
                                      labels=["queue"])
            try:
                for name, count in self.queue_depths().items():
                    depth.add_metric([name], count)
            except PlaybookError:
                return  # the queue is down: no depth figure rather than a failed scrape (the runs still count)
            yield depth
