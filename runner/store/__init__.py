"""Storage: runs index, step journal, LLM response cache, approval decisions, schedules, map chunks.

`Store` is the interface; `open_store(project)` gives the project's: `SqliteStore` (`.playbook/state.db`, the
default) or `PostgresStore` when `[store] url` (or PLAYBOOK_STORE_URL) names a Postgres database.
"""

from runner.store.factory import checkpointer, has_store, open_store, store_location, store_lost
from runner.store.protocol import Store
from runner.store.sql import RUN_FIELDS
from runner.store.sqlite import SqliteStore

__all__ = ["RUN_FIELDS", "SqliteStore", "Store", "checkpointer", "has_store", "open_store", "store_location",
           "store_lost"]
