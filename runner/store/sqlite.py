"""The SQLite store (the default): runs index, step journal, LLM response cache, approval decisions.

SQLite by default (`.playbook/state.db`, WAL). LangGraph's checkpoints live beside it in
`.playbook/checkpoints.db`: sharing one file let the checkpointer's async connection and this
synchronous one wait on each other's write lock. Every write commits before the call that made it
returns, except a run's journal, usage, cached-reply and map-progress writes, which commit together at
the end of the event-loop turn that made them (runner/store/batch_writer.py) — a reply's journal entry
and its usage in one transaction, before the step that awaited it goes on: a kill -9 loses nothing a step
counted as done.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from runner.store.batch_writer import BatchWriter

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, playbook TEXT NOT NULL, path TEXT NOT NULL, source TEXT NOT NULL,
  status TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL, inputs TEXT NOT NULL,
  outputs TEXT, error TEXT, tokens_in INTEGER DEFAULT 0, tokens_out INTEGER DEFAULT 0,
  cost REAL DEFAULT 0, pending TEXT, cancel_requested INTEGER DEFAULT 0, parent TEXT,
  max_cost REAL, pid INTEGER, problems TEXT, pid_started REAL);
CREATE TABLE IF NOT EXISTS journal (
  run_id TEXT NOT NULL, step TEXT NOT NULL, visit INTEGER NOT NULL, key TEXT NOT NULL,
  value TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY (run_id, step, visit, key));
CREATE TABLE IF NOT EXISTS llm_cache (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS schedules (
  id TEXT PRIMARY KEY, next_due REAL NOT NULL, paused INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS schedule_fires (
  schedule_id TEXT NOT NULL, due REAL NOT NULL, at REAL NOT NULL, action TEXT NOT NULL, run_id TEXT,
  detail TEXT, PRIMARY KEY (schedule_id, due));
CREATE TABLE IF NOT EXISTS decisions (
  run_id TEXT NOT NULL, step TEXT NOT NULL, visit INTEGER NOT NULL, decision TEXT NOT NULL, at REAL NOT NULL,
  PRIMARY KEY (run_id, step, visit));
CREATE TABLE IF NOT EXISTS steps (
  run_id TEXT NOT NULL, step TEXT NOT NULL, visit INTEGER NOT NULL, status TEXT NOT NULL, started REAL NOT NULL,
  seconds REAL, llm_calls INTEGER, tokens_in INTEGER, tokens_out INTEGER, cost REAL, done INTEGER,
  total INTEGER, given TEXT, output TEXT, PRIMARY KEY (run_id, step, visit));
CREATE TABLE IF NOT EXISTS approvals (
  run_id TEXT NOT NULL, step TEXT NOT NULL, visit INTEGER NOT NULL, action TEXT NOT NULL,
  by TEXT NOT NULL, at REAL NOT NULL, comment TEXT, edits TEXT, diff TEXT);
"""

RUN_FIELDS = ("id", "playbook", "path", "source", "status", "started_at", "ended_at", "inputs",
              "outputs", "error", "tokens_in", "tokens_out", "cost", "pending", "cancel_requested",
              "parent", "max_cost", "pid", "problems", "pid_started")
JSON_FIELDS = {"inputs", "outputs", "pending", "problems"}


class SqliteStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._writer = BatchWriter(self._db, self._lock)
        present = {row[1] for row in self._db.execute("PRAGMA table_info(runs)")}
        for column, kind in (("pid", "INTEGER"), ("problems", "TEXT"), ("pid_started", "REAL")):  # added later
            if column not in present:
                self._db.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")

    @property
    def location(self) -> str:
        return str(self.path)

    def close(self) -> None:
        self._db.close()

    def _exec(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # runs
    def create_run(self, **fields: Any) -> None:
        names = list(fields)
        values = tuple(_encode(n, fields[n]) for n in names)
        self._exec(f"INSERT INTO runs ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})", values)

    def update_run(self, run_id: str, **fields: Any) -> None:
        sets = ", ".join(f"{n} = ?" for n in fields)
        self._exec(f"UPDATE runs SET {sets} WHERE id = ?",
                   (*(_encode(n, v) for n, v in fields.items()), run_id))

    def take_over(self, run: dict[str, Any], pid: int, pid_started: float | None) -> bool:
        """Make this process the run's owner if nobody changed the run since `run` was read (status and
        owner the same): two `resume`s of one interrupted run, or two clicks, start it once."""
        with self._lock:
            moved = self._db.execute(
                "UPDATE runs SET status='running', pid=?, pid_started=?, error=NULL, ended_at=NULL "
                "WHERE id=? AND status=? AND pid IS ? AND pid_started IS ?",
                (pid, pid_started, run["id"], run["status"], run["pid"], run["pid_started"])).rowcount
        return bool(moved == 1)

    def add_usage(self, run_id: str, tokens_in: int, tokens_out: int, cost: float) -> None:
        self._exec("UPDATE runs SET tokens_in = tokens_in + ?, tokens_out = tokens_out + ?, "
                   "cost = cost + ? WHERE id = ?", (tokens_in, tokens_out, cost, run_id))

    def cancel_requested(self, run_id: str) -> bool:
        rows = self._exec("SELECT cancel_requested FROM runs WHERE id = ?", (run_id,))
        return bool(rows and rows[0][0])

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

    def journal_put(self, run_id: str, step: str, visit: int, key: str, value: Any) -> None:
        self._exec("INSERT OR REPLACE INTO journal VALUES (?, ?, ?, ?, ?, ?)",
                   (run_id, step, visit, key, json.dumps(value, ensure_ascii=False), time.time()))

    def journal_count(self, run_id: str) -> int:
        return int(self._exec("SELECT COUNT(*) FROM journal WHERE run_id = ?", (run_id,))[0][0])

    # LLM response cache
    def cache_get(self, key: str) -> Any | None:
        rows = self._exec("SELECT value FROM llm_cache WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else None

    async def journal_write(self, run_id: str, step: str, visit: int, key: str, value: Any) -> None:
        """`journal_put` for a coroutine: shares a commit with the writes of the same loop turn; returns once
        committed."""
        await self._writer.write("INSERT OR REPLACE INTO journal VALUES (?, ?, ?, ?, ?, ?)",
                                 (run_id, step, visit, key, json.dumps(value, ensure_ascii=False), time.time()))

    def queue_cache(self, key: str, value: Any) -> None:
        """`cache_put` from a coroutine, committed with the loop turn's batch (no wait)."""
        self._writer.queue("INSERT OR REPLACE INTO llm_cache VALUES (?, ?, ?)",
                           (key, json.dumps(value, ensure_ascii=False), time.time()))

    def queue_usage(self, run_id: str, tokens_in: int, tokens_out: int, cost: float) -> None:
        """`add_usage` from a coroutine, committed with the loop turn's batch (no wait)."""
        self._writer.queue("UPDATE runs SET tokens_in = tokens_in + ?, tokens_out = tokens_out + ?, "
                           "cost = cost + ? WHERE id = ?", (tokens_in, tokens_out, cost, run_id))

    def flush(self) -> None:
        """Commit the queued writes of the running loop now."""
        self._writer.flush()

    def cache_put(self, key: str, value: Any) -> None:
        self._exec("INSERT OR REPLACE INTO llm_cache VALUES (?, ?, ?)",
                   (key, json.dumps(value, ensure_ascii=False), time.time()))

    # schedules: the claim is a compare-and-set on next_due, so two schedulers (or one restarted
    # mid-tick) never start the same due time twice
    def schedule_state(self, schedule_id: str) -> dict[str, Any] | None:
        rows = self._exec("SELECT next_due, paused FROM schedules WHERE id = ?", (schedule_id,))
        return {"next_due": rows[0][0], "paused": bool(rows[0][1])} if rows else None

    def schedule_init(self, schedule_id: str, next_due: float) -> None:
        self._exec("INSERT OR IGNORE INTO schedules (id, next_due) VALUES (?, ?)", (schedule_id, next_due))

    def schedule_claim_fire(self, schedule_id: str, due: float, next_due: float, fire_due: float, action: str,
                            run_id: str | None, detail: str | None) -> bool:
        """Claim a due time and write what it became (with the run id it will start) in one transaction: a
        kill between the two can neither lose the run nor let a second scheduler start it again."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                claimed = self._db.execute("UPDATE schedules SET next_due = ? WHERE id = ? AND next_due = ?",
                                           (next_due, schedule_id, due)).rowcount == 1
                if claimed:
                    self._db.execute("INSERT OR REPLACE INTO schedule_fires VALUES (?, ?, ?, ?, ?, ?)",
                                     (schedule_id, fire_due, time.time(), action, run_id, detail))
                self._db.execute("COMMIT" if claimed else "ROLLBACK")
                return claimed
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def schedule_pause(self, schedule_id: str, paused: bool) -> None:
        self._exec("UPDATE schedules SET paused = ? WHERE id = ?", (int(paused), schedule_id))

    def schedule_fire(self, schedule_id: str, due: float, action: str, run_id: str | None = None,
                      detail: str | None = None) -> None:
        self._exec("INSERT OR REPLACE INTO schedule_fires VALUES (?, ?, ?, ?, ?, ?)",
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

    def claim_decision(self, run_id: str, step: str, visit: int, decision: dict[str, Any],
                       pid: int, pid_started: float | None = None) -> dict[str, Any] | None:
        """Record the decision for a waiting (step, visit) and move the run to running, in one transaction.
        Returns None when this call won; else the decision recorded first (by another process or an earlier
        call), and nothing changes — so one decision is applied, whoever asks and however often."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                rows = self._db.execute("SELECT decision FROM decisions WHERE run_id=? AND step=? AND visit=?",
                                        (run_id, step, visit)).fetchall()
                if rows:
                    self._db.execute("ROLLBACK")
                    recorded: dict[str, Any] = json.loads(rows[0][0])
                    return recorded
                moved = self._db.execute("UPDATE runs SET status='running', pid=?, pid_started=?, pending=NULL, "
                                         "error=NULL, ended_at=NULL WHERE id=? AND status='waiting'",
                                         (pid, pid_started, run_id)).rowcount
                if not moved:
                    self._db.execute("ROLLBACK")
                    return {"action": None, "reason": "not waiting"}
                self._db.execute("INSERT INTO decisions VALUES (?, ?, ?, ?, ?)",
                                 (run_id, step, visit, json.dumps(decision, ensure_ascii=False), time.time()))
                self._db.execute("COMMIT")
                return None
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def decision(self, run_id: str, step: str, visit: int) -> dict[str, Any] | None:
        rows = self._exec("SELECT decision FROM decisions WHERE run_id=? AND step=? AND visit=?",
                          (run_id, step, visit))
        return json.loads(rows[0][0]) if rows else None

    # steps: what the run page shows, kept as the run goes (so a refresh never re-reads events.jsonl)
    def step_started(self, run_id: str, step: str, visit: int) -> None:
        self._exec("INSERT OR REPLACE INTO steps (run_id, step, visit, status, started) VALUES (?, ?, ?, 'running', ?)",
                   (run_id, step, visit, time.time()))

    def step_update(self, run_id: str, step: str, *, queued: bool = False, **fields: Any) -> None:
        """Update the step's latest visit; `given` is kept from its first call only. `queued` (from a
        coroutine): committed with the loop turn's batch — a map's progress rides on its journal commits."""
        sets = ", ".join("given = COALESCE(given, ?)" if n == "given" else f"{n} = ?" for n in fields)
        sql = (f"UPDATE steps SET {sets} WHERE run_id = ? AND step = ? AND visit = "
               "(SELECT MAX(visit) FROM steps WHERE run_id = ? AND step = ?)")
        params = (*fields.values(), run_id, step, run_id, step)
        if queued:
            self._writer.queue(sql, params)
        else:
            self._exec(sql, params)

    def step_rows(self, run_id: str) -> list[dict[str, Any]]:
        names = ("step", "visit", "status", "started", "seconds", "llm_calls", "tokens_in", "tokens_out", "cost",
                 "done", "total", "given", "output")
        rows = self._exec(f"SELECT {', '.join(names)} FROM steps WHERE run_id = ? ORDER BY started, rowid",
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
