"""Console progress for `playbook run`: current step, map items done / total and items/s, tokens, cost."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from runner.dsl.kinds import KINDS
from runner.engine.events import Hooks
from runner.i18n import _
from runner.wording import number, status, usage_line, worded


def _where(e: dict[str, Any]) -> str:
    """`feedback › load` for a step of the sub-playbook that the parent's step `feedback` runs (its run id is
    `<parent>.<step>-<visit>[-<item digest>]`; step ids hold no '-' or '.')."""
    run_id = str(e.get("run_id") or "")
    if "." not in run_id:
        return str(e["step"])
    parents = [part.split("-")[0] for part in run_id.split(".")[1:]]
    return " › ".join([*parents, str(e["step"])])


class ConsoleProgress(Hooks):
    def __init__(self, console: Console, currency: str = "CNY", *, tokens: int = 0, cost: float = 0.0) -> None:
        self.console = console
        self.currency = currency
        self.tokens = tokens  # a resumed run's usage so far, so the running total goes on from there
        self.cost = cost
        self.progress: Progress | None = None
        self.tasks: dict[str, Any] = {}  # one bar per map step running now: two in parallel draw two lines
        self.last_plain: dict[str, float] = {}

    def on_step_start(self, **e: Any) -> None:
        visit = _(" (visit {visit})").format(visit=e["visit"]) if e.get("visit", 1) > 1 else ""
        self.console.print(f"[bold cyan]▶[/] {escape(_where(e))} [dim]{_kind_word(e.get('kind'))}{visit}[/]")

    def on_step_end(self, **e: Any) -> None:
        self._stop_bar()
        mark = {"done": "[green]✓[/]", "skipped": "[yellow]○[/]", "approved": "[green]✓[/]",
                "rejected": "[yellow]←[/]", "failed": "[red]×[/]"}.get(e["status"], "•")
        calls = int(e.get("llm_calls", 0))
        step_tokens = int(e.get("tokens_in", 0) + e.get("tokens_out", 0))
        step_usage = _("{calls} LLM calls, {tokens} tokens, cost {cost} {currency} · ").format(
            calls=calls, tokens=number(step_tokens), cost=f"{e.get('cost', 0):.4f}", currency=self.currency) \
            if calls or step_tokens else ""
        took = _("{status}, took {seconds} s").format(status=status(e["status"]), seconds=number(e["seconds"], 1))
        total = _("so far: tokens {tokens} · cost {cost} {currency}").format(
            tokens=number(self.tokens), cost=f"{self.cost:.4f}", currency=self.currency)
        self.console.print(f"  {mark} {escape(_where(e))} {escape(took)}  [dim]{escape(step_usage + total)}[/]")
        if e.get("error"):  # tolerated by on_error: the run goes on, but the user hears of it now
            self.console.print("    [yellow]![/] " + escape(_("{message} (on_error: the run goes on)").format(
                message=e["error"].get("message"))), highlight=False)
        if errors := e.get("errors"):
            first = errors[0]
            self.console.print("    [yellow]![/] " + escape(_("{count} items failed and were skipped; the first, item "
                                                             "{index}: {message}").format(
                count=len(errors), index=first.get("index"), message=first.get("message"))), highlight=False)
        output = e.get("output")
        if isinstance(output, dict) and output.get("notice"):  # a tool's note on what it decided for the user
            self._note(output["notice"])

    def on_tool_call(self, **e: Any) -> None:
        if e.get("notice"):  # e.g. a secret masked in the tool's arguments
            self._stop_bar()
            self._note(e["notice"])

    def on_notice(self, **e: Any) -> None:
        self._stop_bar()
        self._note(f"{_where(e)}：{e['notice']}" if e.get("step") else e["notice"])

    def _note(self, text: Any) -> None:
        self.console.print("    [dim]" + _("note") + f"[/] {escape(str(text))}", highlight=False)

    def on_llm_call(self, **e: Any) -> None:
        self.tokens += int(e.get("tokens_in", 0)) + int(e.get("tokens_out", 0))
        self.cost += float(e.get("cost", 0.0))

    def on_map_progress(self, **e: Any) -> None:
        total, done = e["total"], e["done"]
        if e.get("notice"):  # e.g. the model's concurrency limit caps this step's
            self._stop_bar()
            self._note(e["notice"])
        where = _where(e)
        if not self.console.is_terminal:
            now = time.monotonic()
            if done in (0, total) or now - self.last_plain.get(where, 0.0) >= 5:
                self.last_plain[where] = now
                rate = _(", {rate} items/s").format(rate=e["rate"]) if e.get("rate") else ""
                line = _("{done}/{total} items{rate}, tokens {tokens}, cost {cost} {currency}").format(
                    done=number(done), total=number(total), rate=rate, tokens=number(self.tokens),
                    cost=f"{self.cost:.4f}", currency=self.currency)
                self.console.print(f"  {escape(where)}：{escape(line)}")
            return
        if self.progress is None:
            self.progress = Progress(TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn(_("{task.fields[rate]} items/s · {task.fields[usage]}")),
                                     TimeElapsedColumn(), console=self.console, transient=True)
            self.progress.start()
        if where not in self.tasks:
            self.tasks[where] = self.progress.add_task(escape(where), total=total, rate="-", usage="")
        self.progress.update(self.tasks[where], completed=done, rate=e.get("rate") or "-",
                             usage=usage_line(self.tokens, self.cost, self.currency))

    def _stop_bar(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
            self.tasks.clear()


def _kind_word(name: Any) -> str:
    """A step kind (llm, tool, approval …) as a progress line says it."""
    return worded(KINDS[str(name)].word) if str(name) in KINDS else str(name or "")
