"""events.jsonl: the lines of one loop turn reach the file together at the end of the turn, and a process leaving
by `os._exit` (the command's fast exit, Ctrl-C) writes out what is still waiting first."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from runner.engine.events import EventsFile, Redactor, flush_pending


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def test_a_turns_lines_are_written_together_at_its_end(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    events = EventsFile(path, Redactor([]))
    seen: dict[str, int] = {}

    async def turn() -> None:
        events.on_step_start(run_id="r", step="a")
        events.on_step_end(run_id="r", step="a", status="done", output=1)
        seen["during"] = len(lines(path))
        await asyncio.sleep(0)  # the turn ends: its lines go out
        seen["after"] = len(lines(path))

    asyncio.run(turn())
    events.close()
    assert seen == {"during": 0, "after": 2}


def test_outside_a_loop_each_line_is_written_at_once(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    events = EventsFile(path, Redactor([]))
    events.on_notice(notice="hello")
    assert len(lines(path)) == 1
    events.close()


def test_waiting_lines_are_written_by_flush_pending(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    events = EventsFile(path, Redactor([]))

    async def turn() -> int:
        events.on_step_start(run_id="r", step="a")
        flush_pending()
        return len(lines(path))

    assert asyncio.run(turn()) == 1
    events.close()


def test_a_process_leaving_by_os_exit_mid_turn_keeps_its_lines(tmp_path: Path) -> None:
    """The command's exit (runner.cli.leaving.flush_output, then os._exit) from inside a loop turn."""
    path = tmp_path / "events.jsonl"
    code = (f"import asyncio, os\nfrom pathlib import Path\nfrom runner.engine.events import EventsFile, Redactor\n"
            f"from runner.cli.leaving import flush_output\n"
            f"events = EventsFile(Path({str(path)!r}), Redactor([]))\n"
            f"async def turn():\n    events.on_step_start(run_id='r', step='a')\n"
            f"    events.on_step_end(run_id='r', step='a', status='done', output=1)\n"
            f"    flush_output()\n    os._exit(0)\n"
            f"asyncio.run(turn())\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert [line.split('"event": ')[1].split('"')[1] for line in lines(path)] == ["step_start", "step_end"]
