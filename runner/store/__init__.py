"""Storage: runs index, step journal, LLM response cache, approval decisions, schedules.

`Store` is the interface; `SqliteStore` the implementation every command uses today (`.playbook/state.db`).
"""

from runner.store.protocol import Store
from runner.store.sqlite import RUN_FIELDS, SqliteStore

__all__ = ["RUN_FIELDS", "SqliteStore", "Store"]
