"""Every query of the store, written once for SQLite and Postgres (runner/store/sqlite.py, postgres.py)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from runner.store.batch_writer import BatchWriter

Execute = Callable[[str, tuple[Any, ...]], Any]  # runs one statement in a transaction; returns its cursor

ONCE = "~once"  # the journal "step" under which claim_once keeps its keys
_JOURNAL_PUT = ("INSERT INTO journal VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, step, visit, key) "
                "DO UPDATE SET value = excluded.value, created = excluded.created")
_CACHE_PUT = ("INSERT INTO llm_cache VALUES (?, ?, ?) ON CONFLICT (key) "
              "DO UPDATE SET value = excluded.value, created = excluded.created")
_FIRE_PUT = ("INSERT INTO schedule_fires VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (schedule_id, due) "
             "DO UPDATE SET at = excluded.at, action = excluded.action, run_id = excluded.run_id, "
             "detail = excluded.detail")
_CHUNK_FIELDS = ("chunk", "first_item", "end_item", "status", "worker", "heartbeat", "runs")
_STEP_RESULTS = ("seconds", "llm_calls", "tokens_in", "tokens_out", "cost", "done", "total", "given", "output")

RUN_FIELDS = ("id", "playbook", "path", "source", "status", "started_at", "ended_at", "inputs",
              "outputs", "error", "tokens_in", "tokens_out", "cost", "pending", "cancel_requested",
              "parent", "max_cost", "pid", "problems", "pid_started", "host", "heartbeat")
JSON_FIELDS = {"inputs", "outputs", "pending", "problems"}


class SqlStore:
    """Every query of the store, in SQL both SQLite and Postgres run (`?` placeholders; upserts with
    ON CONFLICT). A subclass supplies the connection: `_exec`, `_transaction`, `_lock_run`, `_writer`."""

    _STEP_ORDER = "started"  # ties (same microsecond) in insertion order where the database can say so
    _FOR_UPDATE = ""  # row locks inside a transaction, where the database has them (Postgres)
    _writer: BatchWriter

    @property
    def location(self) -> str:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _exec(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _transaction(self) -> contextlib.AbstractContextManager[Execute]:
        """A transaction that holds the database's write lock from its first statement (SQLite: BEGIN
        IMMEDIATE), committed when the block ends, rolled back when it raises."""
        raise NotImplementedError

    def _lock_run(self, execute: Execute, run_id: str) -> None:
        """Inside a transaction: wait for, then hold, the run's row (Postgres locks rows; SQLite's
        transaction already holds the whole database)."""

    # runs
    def create_run(self, **fields: Any) -> None:
        names = list(fields)
        values = tuple(_encode(n, fields[n]) for n in names)
        self._exec(f"INSERT INTO runs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})", values)

    def update_run(self, run_id: str, **fields: Any) -> None:
        sets = ", ".join(f"{n} = ?" for n in fields)
        self._exec(f"UPDATE runs SET {sets} WHERE id = ?",
                   (*(_encode(n, v) for n, v in fields.items()), run_id))

    def take_over(self, run: dict[str, Any], pid: int, pid_started: float | None, host: str | None = None) -> bool:
        """Make this process the run's owner if nobody changed the run since `run` was read (status and
        owner the same): two `resume`s of one interrupted run, or two clicks, start it once."""
        with self._transaction() as execute:
            moved = execute(
                "UPDATE runs SET status='running', pid=?, pid_started=?, host=?, heartbeat=?, error=NULL, "
                "ended_at=NULL WHERE id=? AND status=? AND pid IS NOT DISTINCT FROM ? "
                "AND pid_started IS NOT DISTINCT FROM ?",
                (pid, pid_started, host, time.time(), run["id"], run["status"], run["pid"],
                 run["pid_started"])).rowcount
        return bool(moved == 1)

    def add_usage(self, run_id: str, tokens_in: int, tokens_out: int, cost: float) -> None:
        self._exec("UPDATE runs SET tokens_in = tokens_in + ?, tokens_out = tokens_out + ?, "
                   "cost = cost + ? WHERE id = ?", (tokens_in, tokens_out, cost, run_id))

    def cancel_requested(self, run_id: str) -> bool:
        return self.run_control(run_id)[0]

    def run_control(self, run_id: str) -> tuple[bool, int | None, str | None]:
        """What a driving process checks between calls, in one read: cancel asked, and who owns the run now."""
        rows = self._exec("SELECT cancel_requested, pid, host FROM runs WHERE id = ?", (run_id,))
        return (bool(rows[0][0]), rows[0][1], rows[0][2]) if rows else (False, None, None)

    def run_cost(self, run_id: str) -> float:
        rows = self._exec("SELECT cost FROM runs WHERE id = ?", (run_id,))
        return float(rows[0][0] or 0.0) if rows else 0.0

    def run_counts(self) -> dict[str, int]:
        """Top-level runs by status (`playbook status`)."""
        rows = self._exec("SELECT status, count(*) FROM runs WHERE parent IS NULL GROUP BY status")
        return {str(status): int(count) for status, count in rows}

    def waiting_since(self) -> list[float]:
        """When each top-level run waiting for an approval began to wait: its approval step's start (a step that
        paused has not ended)."""
        rows = self._exec("SELECT max(s.started) FROM runs r JOIN steps s ON s.run_id = r.id WHERE r.status = "
                          "'waiting' AND r.parent IS NULL AND s.status = 'running' GROUP BY r.id")
        return [float(since) for since, in rows if since is not None]

    def heartbeat(self, run_id: str, pid: int, host: str | None) -> bool:
        """A worker's sign of life on a run it holds; False once another process has taken the run over."""
        return self._exec("UPDATE runs SET heartbeat = ? WHERE id = ? AND pid = ? AND host IS NOT DISTINCT FROM ? "
                          "RETURNING id", (time.time(), run_id, pid, host)) != []

    # the chunks of a distributed map: created once per map visit, claimed by one live holder at a time
    def chunks_create(self, run_id: str, step: str, visit: int, ranges: list[tuple[int, int]]) -> None:
        with self._transaction() as execute:
            for number, (first, end) in enumerate(ranges):
                execute("INSERT INTO map_chunks (run_id, step, visit, chunk, first_item, end_item, status) "
                        "VALUES (?, ?, ?, ?, ?, ?, 'pending') ON CONFLICT (run_id, step, visit, chunk) DO NOTHING",
                        (run_id, step, visit, number, first, end))

    def chunk_rows(self, run_id: str, step: str, visit: int) -> list[dict[str, Any]]:
        rows = self._exec(f"SELECT {', '.join(_CHUNK_FIELDS)} FROM map_chunks WHERE run_id = ? AND step = ? "
                          "AND visit = ? ORDER BY chunk", (run_id, step, visit))
        return [dict(zip(_CHUNK_FIELDS, row, strict=True)) for row in rows]

    def chunk_claim(self, run_id: str, step: str, visit: int, number: int, holder: str,
                    held_elsewhere: Callable[[str, float | None], bool]) -> dict[str, Any] | None:
        """Make `holder` the chunk's holder unless it is done or a live holder has it (`held_elsewhere(worker,
        heartbeat)`); returns the chunk when claimed."""
        with self._transaction() as execute:
            rows = execute(f"SELECT {', '.join(_CHUNK_FIELDS)} FROM map_chunks WHERE run_id = ? AND step = ? "
                           f"AND visit = ? AND chunk = ?{self._FOR_UPDATE}", (run_id, step, visit, number)).fetchall()
            if not rows:
                return None
            chunk = dict(zip(_CHUNK_FIELDS, rows[0], strict=True))
            if chunk["status"] == "done" or (chunk["status"] == "running" and chunk["worker"] != holder and
                                             held_elsewhere(chunk["worker"], chunk["heartbeat"])):
                return None
            execute("UPDATE map_chunks SET status = 'running', worker = ?, heartbeat = ?, runs = runs + 1 "
                    "WHERE run_id = ? AND step = ? AND visit = ? AND chunk = ?",
                    (holder, time.time(), run_id, step, visit, number))
            return {**chunk, "status": "running", "worker": holder, "runs": chunk["runs"] + 1}

    def chunk_update(self, run_id: str, step: str, visit: int, number: int, holder: str, **fields: Any) -> bool:
        """Update a chunk this holder still holds (a heartbeat, `status='done'`); False once it is not its own."""
        sets = ", ".join(f"{name} = ?" for name in fields)
        return self._exec(f"UPDATE map_chunks SET {sets} WHERE run_id = ? AND step = ? AND visit = ? AND chunk = ? "
                          "AND worker = ? RETURNING chunk", (*fields.values(), run_id, step, visit, number,
                                                             holder)) != []

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        rows = self._exec(f"SELECT {', '.join(RUN_FIELDS)} FROM runs WHERE id = ?", (run_id,))
        if not rows:
            rows = self._exec(f"SELECT {', '.join(RUN_FIELDS)} FROM runs WHERE id LIKE ? "
                              "ORDER BY started_at DESC", (run_id + "%",))
            if len(rows) != 1:
                return None
        return _decode(rows[0])

    def list_runs(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._exec(f"SELECT {', '.join(RUN_FIELDS)} FROM runs WHERE parent IS NULL "
                          "ORDER BY started_at DESC LIMIT ?", (limit,))
        return [_decode(r) for r in rows]

    def finished_runs(self, playbook: str, exclude: str, limit: int = 50) -> list[dict[str, Any]]:
        """Finished top-level runs of `playbook`, newest first, leaving out run `exclude`."""
        rows = self._exec(f"SELECT {', '.join(RUN_FIELDS)} FROM runs WHERE playbook = ? AND status = 'done' "
                          "AND parent IS NULL AND id != ? ORDER BY started_at DESC LIMIT ?",
                          (playbook, exclude, limit))
        return [_decode(r) for r in rows]

    # journal
    def journal_get(self, run_id: str, step: str, visit: int, key: str) -> Any | None:
        rows = self._exec("SELECT value FROM journal WHERE run_id=? AND step=? AND visit=? AND key=?",
                          (run_id, step, visit, key))
        return json.loads(rows[0][0]) if rows else None

    def journal_any(self, run_id: str, step: str, visit: int) -> bool:
        """Whether anything is journaled for this step visit."""
        return bool(self._exec("SELECT 1 FROM journal WHERE run_id=? AND step=? AND visit=? LIMIT 1",
                               (run_id, step, visit)))

    def journal_entries(self, run_id: str, step: str, visit: int) -> dict[str, Any]:
        """Everything journaled for one step visit, by key, in one query."""
        rows = self._exec("SELECT key, value FROM journal WHERE run_id=? AND step=? AND visit=?", (run_id, step, visit))
        return {key: json.loads(value) for key, value in rows}

    def journal_put(self, run_id: str, step: str, visit: int, key: str, value: Any) -> None:
        self._exec(_JOURNAL_PUT,
                   (run_id, step, visit, key, json.dumps(value, ensure_ascii=False), time.time()))

    # LLM response cache
    def cache_get(self, key: str) -> Any | None:
        rows = self._exec("SELECT value FROM llm_cache WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else None

    async def journal_write(self, run_id: str, step: str, visit: int, key: str, value: Any) -> None:
        """`journal_put` for a coroutine: shares a commit with the writes of the same loop turn; returns once
        committed."""
        await self._writer.write(_JOURNAL_PUT,
                                 (run_id, step, visit, key, json.dumps(value, ensure_ascii=False), time.time()))

    def queue_cache(self, key: str, value: Any) -> None:
        """`cache_put` from a coroutine, committed with the loop turn's batch (no wait)."""
        self._writer.queue(_CACHE_PUT,
                           (key, json.dumps(value, ensure_ascii=False), time.time()))

    def queue_usage(self, run_id: str, tokens_in: int, tokens_out: int, cost: float) -> None:
        """`add_usage` from a coroutine, committed with the loop turn's batch (no wait)."""
        self._writer.queue("UPDATE runs SET tokens_in = tokens_in + ?, tokens_out = tokens_out + ?, "
                           "cost = cost + ? WHERE id = ?", (tokens_in, tokens_out, cost, run_id))

    def flush(self) -> None:
        """Commit the queued writes of the running loop now."""
        self._writer.flush()

    def cache_put(self, key: str, value: Any) -> None:
        self._exec(_CACHE_PUT,
                   (key, json.dumps(value, ensure_ascii=False), time.time()))

    # schedules: the claim is a compare-and-set on next_due, so two schedulers (or one restarted
    # mid-tick) never start the same due time twice
    def schedule_state(self, schedule_id: str) -> dict[str, Any] | None:
        rows = self._exec("SELECT next_due, paused FROM schedules WHERE id = ?", (schedule_id,))
        return {"next_due": rows[0][0], "paused": bool(rows[0][1])} if rows else None

    def schedule_init(self, schedule_id: str, next_due: float) -> None:
        self._exec("INSERT INTO schedules (id, next_due) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
                   (schedule_id, next_due))

    def schedule_claim_fire(self, schedule_id: str, due: float, next_due: float, fire_due: float, action: str,
                            run_id: str | None, detail: str | None) -> bool:
        """Claim a due time and write what it became (with the run id it will start) in one transaction: a
        kill between the two can neither lose the run nor let a second scheduler start it again."""
        with self._transaction() as execute:
            claimed = execute("UPDATE schedules SET next_due = ? WHERE id = ? AND next_due = ?",
                              (next_due, schedule_id, due)).rowcount == 1
            if claimed:
                execute(_FIRE_PUT, (schedule_id, fire_due, time.time(), action, run_id, detail))
            return bool(claimed)

    def schedule_pause(self, schedule_id: str, paused: bool) -> None:
        self._exec("UPDATE schedules SET paused = ? WHERE id = ?", (int(paused), schedule_id))

    def schedule_fire(self, schedule_id: str, due: float, action: str, run_id: str | None = None,
                      detail: str | None = None) -> None:
        self._exec(_FIRE_PUT,
                   (schedule_id, due, time.time(), action, run_id, detail))

    def schedule_fires(self, schedule_id: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        where, params = ("WHERE schedule_id = ?", (schedule_id,)) if schedule_id else ("", ())
        rows = self._exec(f"SELECT schedule_id, due, at, action, run_id, detail FROM schedule_fires {where} "
                          "ORDER BY due DESC LIMIT ?", (*params, limit))
        keys = ("schedule_id", "due", "at", "action", "run_id", "detail")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    # approvals
    def record_approval(self, **fields: Any) -> None:
        names = ("run_id", "step", "visit", "action", "by", "at", "comment", "edits", "diff")
        values = tuple(json.dumps(fields.get(n), ensure_ascii=False) if n in ("edits", "diff")
                       else fields.get(n) for n in names)
        self._exec(f"INSERT INTO approvals VALUES ({', '.join('?' * len(names))})", values)

    def claim_once(self, run_id: str, key: str) -> bool:
        """True for the first caller only, in any process on any machine: what must happen once per run and
        `key` (an approval card for one pause, a notice for one end) however many workers see it."""
        with self._transaction() as execute:
            return bool(execute("INSERT INTO journal VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, step, visit, key) "
                                "DO NOTHING", (run_id, ONCE, 0, key, "true", time.time())).rowcount)

    def claim_decision(self, run_id: str, step: str, visit: int, decision: dict[str, Any],
                       pid: int, pid_started: float | None = None,
                       host: str | None = None) -> dict[str, Any] | None:
        """Record the decision for a waiting (step, visit) and move the run to running, in one transaction.
        Returns None when this call won; else the decision recorded first (by another process or an earlier
        call), and nothing changes — so one decision is applied, whoever asks and however often."""
        with self._transaction() as execute:
            self._lock_run(execute, run_id)
            rows = execute("SELECT decision FROM decisions WHERE run_id=? AND step=? AND visit=?",
                           (run_id, step, visit)).fetchall()
            if rows:
                recorded: dict[str, Any] = json.loads(rows[0][0])
                return recorded
            moved = execute("UPDATE runs SET status='running', pid=?, pid_started=?, host=?, heartbeat=?, "
                            "pending=NULL, error=NULL, ended_at=NULL WHERE id=? AND status='waiting'",
                            (pid, pid_started, host, time.time(), run_id)).rowcount
            if not moved:
                return {"action": None, "reason": "not waiting"}
            execute("INSERT INTO decisions VALUES (?, ?, ?, ?, ?)",
                    (run_id, step, visit, json.dumps(decision, ensure_ascii=False), time.time()))
            return None

    def decision(self, run_id: str, step: str, visit: int) -> dict[str, Any] | None:
        rows = self._exec("SELECT decision FROM decisions WHERE run_id=? AND step=? AND visit=?",
                          (run_id, step, visit))
        return json.loads(rows[0][0]) if rows else None

    # steps: what the run page shows, kept as the run goes (so a refresh never re-reads events.jsonl)
    def step_started(self, run_id: str, step: str, visit: int, *, queued: bool = False) -> None:
        self._write("INSERT INTO steps (run_id, step, visit, status, started) VALUES (?, ?, ?, 'running', ?) "
                    "ON CONFLICT (run_id, step, visit) DO UPDATE SET status = 'running', started = excluded.started, "
                    + ", ".join(f"{column} = NULL" for column in _STEP_RESULTS), (run_id, step, visit, time.time()),
                    queued)

    def step_update(self, run_id: str, step: str, *, queued: bool = False, **fields: Any) -> None:
        """Update the step's latest visit; `given` is kept from its first call only."""
        sets = ", ".join("given = COALESCE(given, ?)" if n == "given" else f"{n} = ?" for n in fields)
        sql = (f"UPDATE steps SET {sets} WHERE run_id = ? AND step = ? AND visit = "
               "(SELECT MAX(visit) FROM steps WHERE run_id = ? AND step = ?)")
        self._write(sql, (*fields.values(), run_id, step, run_id, step), queued)

    def _write(self, sql: str, params: tuple[Any, ...], queued: bool) -> None:
        """`queued`: with the running loop's batch (runner/store/batch_writer.py) — a step's rows ride on the
        commit of its journal write instead of a commit each; now, when no loop runs."""
        if queued:
            try:
                self._writer.queue(sql, params)
                return
            except RuntimeError:  # no running loop
                pass
        self._exec(sql, params)

    def step_rows(self, run_id: str) -> list[dict[str, Any]]:
        names = ("step", "visit", "status", "started", "seconds", "llm_calls", "tokens_in", "tokens_out", "cost",
                 "done", "total", "given", "output")
        rows = self._exec(f"SELECT {', '.join(names)} FROM steps WHERE run_id = ? ORDER BY {self._STEP_ORDER}",
                          (run_id,))
        return [{k: (json.loads(v) if k in ("given", "output") and v else v) for k, v in zip(names, r, strict=True)}
                for r in rows]

    def approvals(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._exec("SELECT step, visit, action, by, at, comment, edits, diff FROM approvals "
                          "WHERE run_id = ? ORDER BY at", (run_id,))
        keys = ("step", "visit", "action", "by", "at", "comment", "edits", "diff")
        return [{k: (json.loads(v) if k in ("edits", "diff") and v else v) for k, v in zip(keys, r,
                                                                                       strict=True)}
                for r in rows]


def _encode(name: str, value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False, default=str) if name in JSON_FIELDS and \
        value is not None else value


def _decode(row: tuple[Any, ...]) -> dict[str, Any]:
    run = dict(zip(RUN_FIELDS, row, strict=True))
    for name in JSON_FIELDS:
        if run[name] is not None:
            run[name] = json.loads(run[name])
    return run
