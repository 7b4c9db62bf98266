"""Sheet artifacts rebuilt whole from a ledger of what each step wrote.

Every `sheet.write` records its rows in the run folder (`.sheets/<file>/`, gzip JSON lines, written
atomically) and then writes the whole file again from the ledger, atomically, in openpyxl's streaming mode.
So a kill -9 mid-save leaves the previous file intact; a workbook deleted or damaged after an earlier step
added its sheet is rebuilt with every sheet by the next write; and a step that is re-run after a crash
replaces its own rows instead of adding them twice (its chunk is keyed by step and content).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runner import atomic

WIDTH_SAMPLE = 2000  # rows looked at to size columns: enough to size them, bounded for 200,000-row sheets


class Ledger:
    def __init__(self, run_dir: Path, target: Path) -> None:
        name = hashlib.sha1(str(target).encode()).hexdigest()[:12]
        self.folder = run_dir / ".sheets" / f"{target.name}-{name}"
        self.manifest_path = self.folder / "manifest.json"
        self.target = target

    def manifest(self) -> list[dict[str, Any]]:
        """[{sheet, chunks: [{key, file, columns}]}] in the order the sheets were first written."""
        if not self.manifest_path.exists():
            return []
        sheets: list[dict[str, Any]] = json.loads(self.manifest_path.read_text(encoding="utf-8"))["sheets"]
        return sheets

    def known(self) -> bool:
        return self.manifest_path.exists()

    def put(self, sheet: str, key: str, columns: list[str], rows: list[dict[str, Any]], mode: str) -> None:
        digest = hashlib.sha1(json.dumps([sheet, key, columns, rows], ensure_ascii=False, sort_keys=True,
                                         default=str).encode()).hexdigest()[:16]
        chunk: dict[str, Any] = {"key": f"{key}:{digest}", "file": f"{digest}.jsonl.gz", "columns": columns}
        self.folder.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)
        atomic.write_bytes(self.folder / f"{digest}.jsonl.gz", gzip.compress(lines.encode("utf-8"), compresslevel=3))
        sheets = self.manifest()
        entry = next((s for s in sheets if s["sheet"] == sheet), None)
        if entry is None:
            sheets.append({"sheet": sheet, "chunks": [chunk]})
        elif mode == "replace":
            entry["chunks"] = [chunk]
        else:  # append: a re-run of the same step with the same rows replaces itself
            entry["chunks"] = [c for c in entry["chunks"] if c["key"] != chunk["key"]] + [chunk]
        atomic.write_text(self.manifest_path, json.dumps({"target": str(self.target), "sheets": sheets},
                                                         ensure_ascii=False, indent=1))

    def sheets(self) -> Iterator[tuple[str, list[str], Iterator[dict[str, Any]]]]:
        """(sheet name, columns in order, its rows) for every sheet, streamed from disk."""
        for entry in self.manifest():
            columns = list(dict.fromkeys(c for chunk in entry["chunks"] for c in chunk["columns"]))
            yield entry["sheet"], columns, self._rows(entry["chunks"])

    def sheets_rows(self, sheet: str) -> Iterator[dict[str, Any]]:
        """One sheet's rows again (a second pass after sizing its columns)."""
        entry = next(s for s in self.manifest() if s["sheet"] == sheet)
        return self._rows(entry["chunks"])

    def _rows(self, chunks: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for chunk in chunks:
            with gzip.open(self.folder / chunk["file"], "rt", encoding="utf-8") as lines:
                for line in lines:
                    yield json.loads(line)
