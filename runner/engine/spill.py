"""Big step outputs are kept beside the run, not in its state. A 200,000-row table in the state is serialized
into every checkpoint write (tens of MB at once, twice over in msgpack and SQLite); written once to
`<run folder>/.outputs/` instead, the state holds a small marker, this process keeps the value it already has,
and a resume in another process (a worker on the shared folder) reads the file back."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, TextIO

from runner import atomic
from runner.engine.events import json_longer_than
from runner.errors import RunError
from runner.i18n import _

SPILL_CHARS = 1_000_000  # an output whose JSON is longer than this goes to a file
FOLDER = ".outputs"  # hidden: the run page lists the run folder's own files, not this
MARK = "$kept_in"


class Spill:
    def __init__(self, run_dir: Path, run_id: str) -> None:
        self.folder = run_dir / FOLDER
        self.run_id = run_id
        self.live: dict[str, tuple[str, Any]] = {}  # step → (its file, its value), the latest visit only

    async def keep(self, step_id: str, visit: int, output: Any) -> Any:
        """What the state holds for `output`: the output itself when small, else a marker naming its file
        (written off the event loop: 25 MB take a second)."""
        if not json_longer_than(output, SPILL_CHARS):
            return output
        return await asyncio.to_thread(self._write, step_id, visit, output)

    def _write(self, step_id: str, visit: int, output: Any) -> dict[str, str]:
        name = f"{self.run_id}.{step_id}.{visit}.json"
        with atomic.replacing(self.folder / name) as temporary, temporary.open("w", encoding="utf-8") as handle:
            write_json(output, handle)
        self.live[step_id] = (name, output)
        return {MARK: name}

    def value(self, step_id: str, held: Any) -> Any:
        """The output the state's `held` stands for."""
        if not (isinstance(held, dict) and len(held) == 1 and isinstance(held.get(MARK), str)):
            return held
        name = held[MARK]
        if step_id in self.live and self.live[step_id][0] == name:
            return self.live[step_id][1]
        try:
            with (self.folder / Path(name).name).open(encoding="utf-8") as handle:
                value = json.load(handle)
        except (OSError, ValueError) as exc:
            raise RunError(_("the output of step '{step_id}' was kept in {number}, which cannot be read ({exc}); "
                             "was the run folder moved or cleaned? Start the run again").format(
                               step_id=step_id, number=self.folder / name, exc=exc),
                           step=step_id) from None
        self.live[step_id] = (name, value)
        return value


def write_json(value: Any, handle: TextIO) -> None:
    """`value` as JSON, written a piece at a time: objects field by field, lists element by element — never the
    whole text in memory at once."""
    if isinstance(value, dict):
        handle.write("{")
        for i, (key, inner) in enumerate(value.items()):
            handle.write(("," if i else "") + json.dumps(str(key), ensure_ascii=False) + ":")
            write_json(inner, handle)
        handle.write("}")
    elif isinstance(value, list | tuple):
        handle.write("[")
        for i, element in enumerate(value):
            handle.write(("," if i else "") + json.dumps(element, ensure_ascii=False, default=str))
        handle.write("]")
    else:
        handle.write(json.dumps(value, ensure_ascii=False, default=str))
