"""The console's progress lines: two map steps running side by side each get their own line, in a terminal and
piped; the embedded model's still-working note is said under the step's name."""

from __future__ import annotations

import io

from rich.console import Console

from runner.cli.progress import ConsoleProgress


def test_two_maps_in_parallel_draw_two_bars_in_a_terminal() -> None:
    progress = ConsoleProgress(Console(file=io.StringIO(), force_terminal=True, width=120))
    progress.on_map_progress(run_id="r", step="label", done=3, total=10, rate=1.5)
    progress.on_map_progress(run_id="r", step="replies", done=1, total=4)
    progress.on_map_progress(run_id="r", step="label", done=4, total=10)
    assert progress.progress is not None
    bars = {task.description: (task.completed, task.total) for task in progress.progress.tasks}
    assert bars == {"label": (4, 10), "replies": (1, 4)}
    progress.on_step_end(run_id="r", step="replies", status="done", seconds=2.0)  # its bar goes, label's returns
    progress.on_map_progress(run_id="r", step="label", done=5, total=10)
    assert [t.description for t in progress.progress.tasks] == ["label"]
    progress.on_step_end(run_id="r", step="label", status="done", seconds=3.0)
    assert progress.progress is None  # the bars are stopped, not left drawing


def test_two_maps_in_parallel_each_print_their_line_when_piped() -> None:
    out = io.StringIO()
    progress = ConsoleProgress(Console(file=out, force_terminal=False, width=120))
    progress.on_map_progress(run_id="r", step="label", done=0, total=10)
    progress.on_map_progress(run_id="r", step="replies", done=0, total=4)
    progress.on_map_progress(run_id="r", step="label", done=10, total=10)
    lines = out.getvalue().splitlines()
    assert lines == ["  label：0/10 项，tokens 0，费用 0.0000 CNY", "  replies：0/4 项，tokens 0，费用 0.0000 CNY",
                     "  label：10/10 项，tokens 0，费用 0.0000 CNY"]


def test_a_notice_is_said_under_its_step() -> None:
    out = io.StringIO()
    ConsoleProgress(Console(file=out, force_terminal=False)).on_notice(run_id="r.feedback-1", step="label",
                                                                     notice="还在处理")
    assert out.getvalue().strip() == "说明 feedback › label：还在处理"
