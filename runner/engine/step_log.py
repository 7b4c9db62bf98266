"""The steps table: each step's status, time, usage, map progress, first input and output preview, written to
the store as the run goes. The run page and `runs show` read it instead of re-reading events.jsonl (a
100,000-item run's file took 437 ms to parse on every 3-second refresh)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runner.engine.events import Hooks, brief, position
from runner.store import Store


class StepLog(Hooks):
    """Its writes are queued: in a run's event loop they commit with the journal writes of the same turn (four
    commits a step were a third of the engine's own cost per step, `benchmarks/bench_engine.py --chain-sizes`);
    the table is for display, the journal is what a resumed run trusts."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.given: set[tuple[str, str]] = set()  # steps whose first input is recorded

    def on_step_start(self, **e: Any) -> None:
        self.store.step_started(e["run_id"], e["step"], int(e.get("visit", 1)), queued=True)
        self.given.discard((e["run_id"], e["step"]))

    def on_tool_call(self, **e: Any) -> None:
        self._given(e, "args")

    def on_llm_call(self, **e: Any) -> None:
        self._given(e, "prompt")

    def _given(self, e: dict[str, Any], key: str) -> None:
        """The step's first input only: one write per step, not one per call of a 10,000-item map."""
        where = (str(e.get("run_id")), str(e.get("step")))
        if e.get(key) is not None and e.get("step") and e.get("run_id") and where not in self.given:
            self.given.add(where)
            self.store.step_update(e["run_id"], e["step"], queued=True, given=_json(brief({key: e[key]})[key]))

    def on_map_progress(self, **e: Any) -> None:
        if e.get("run_id") and (e.get("batch_done") or e.get("done") == e.get("total")):
            self.store.step_update(e["run_id"], e["step"], queued=True, done=e.get("done"), total=e.get("total"))

    def on_step_end(self, **e: Any) -> None:
        self.store.step_update(e["run_id"], e["step"], queued=True, status=e["status"], seconds=e.get("seconds"),
                               llm_calls=int(e.get("llm_calls", 0)), tokens_in=int(e.get("tokens_in", 0)),
                               tokens_out=int(e.get("tokens_out", 0)), cost=float(e.get("cost", 0.0)),
                               output=_json(brief({"output": e.get("output")})["output"]))


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def reached(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Where a run got to, from its steps table: the step it is (or was) in, else the last one it finished,
    with the map items done of total."""
    if not rows:
        return None
    open_rows = [r for r in rows if r["status"] == "running"]
    row = open_rows[-1] if open_rows else rows[-1]
    found = {"step": row["step"], "finished": row["status"] != "running"}
    if row.get("total") is not None:
        found.update(done=row["done"], total=row["total"])
    return found


def where_it_stopped(store: Store, run_dir: Path, run_id: str) -> dict[str, Any] | None:
    """`reached` from the steps table; for a run recorded before it, from its events file's tail."""
    return reached(store.step_rows(run_id)) or position(run_dir / "events.jsonl", run_id)
