"""Console progress for `playbook run`: current step, map items done / total and items/s, tokens, cost."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from runner.engine.events import Hooks


class ConsoleProgress(Hooks):
    def __init__(self, console: Console, currency: str = "CNY") -> None:
        self.console = console
        self.currency = currency
        self.tokens = 0
        self.cost = 0.0
        self.progress: Progress | None = None
        self.task: Any = None
        self.last_plain = 0.0

    def on_step_start(self, **e: Any) -> None:
        visit = f" (visit {e['visit']})" if e.get("visit", 1) > 1 else ""
        self.console.print(f"[bold cyan]▶[/] {e['step']} [dim]{e.get('kind', '')}{visit}[/]")

    def on_step_end(self, **e: Any) -> None:
        self._stop_bar()
        mark = {"done": "[green]✓[/]", "skipped": "[yellow]○[/]", "approved": "[green]✓[/]",
                "rejected": "[yellow]←[/]", "failed": "[red]×[/]"}.get(e["status"], "•")
        calls = int(e.get("llm_calls", 0))
        step_usage = (f"{calls} LLM calls, {int(e.get('tokens_in', 0) + e.get('tokens_out', 0)):,} tokens, "
                      f"{e.get('cost', 0):.4f} · " if calls else "")
        self.console.print(f"  {mark} {e['step']} {e['status']} in {e['seconds']:.1f}s  [dim]{step_usage}"
                           f"run: tokens {self.tokens:,} · cost {self.cost:.4f} {self.currency}[/]")
        if e.get("error"):  # tolerated by on_error: the run goes on, but the user hears of it now
            self.console.print(f"    [yellow]![/] {escape(str(e['error'].get('message')))} (on_error: the run goes on)",
                               highlight=False)
        if errors := e.get("errors"):
            first = errors[0]
            self.console.print(f"    [yellow]![/] {len(errors)} item(s) failed and were skipped; first: item "
                               f"{first.get('index')}: {escape(str(first.get('message')))}", highlight=False)
        output = e.get("output")
        if isinstance(output, dict) and output.get("notice"):  # a tool's note on what it decided for the user
            self.console.print(f"    [dim]note[/] {escape(str(output['notice']))}", highlight=False)

    def on_llm_call(self, **e: Any) -> None:
        self.tokens += int(e.get("tokens_in", 0)) + int(e.get("tokens_out", 0))
        self.cost += float(e.get("cost", 0.0))

    def on_map_progress(self, **e: Any) -> None:
        total, done = e["total"], e["done"]
        if not self.console.is_terminal:
            now = time.monotonic()
            if done in (0, total) or now - self.last_plain >= 5:
                self.last_plain = now
                rate = f", {e['rate']} items/s" if e.get("rate") else ""
                self.console.print(f"  {e['step']}: {done}/{total} items{rate}, tokens {self.tokens:,}, "
                                   f"cost {self.cost:.4f} {self.currency}")
            return
        if self.progress is None:
            self.progress = Progress(TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[rate]} items/s · {task.fields[usage]}"),
                                     TimeElapsedColumn(), console=self.console, transient=True)
            self.progress.start()
            self.task = self.progress.add_task(e["step"], total=total, rate="-", usage="")
        self.progress.update(self.task, completed=done, rate=e.get("rate") or "-",
                             usage=f"tokens {self.tokens:,} · {self.cost:.4f} {self.currency}")

    def _stop_bar(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
