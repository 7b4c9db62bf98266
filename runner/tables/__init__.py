"""Tables users bring: one reader for every csv, xlsx and jsonl a tool or an eval dataset reads (`files`), and the
pure judgement of a table's shape it relies on (`shape`)."""

from runner.tables.files import Shape, Table, check_table, read_table

__all__ = ["Shape", "Table", "check_table", "read_table"]
