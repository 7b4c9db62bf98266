"""`map`: one node runs all its items itself — bounded concurrency, LLM batching, one journal entry
per unit — instead of one LangGraph `Send` per item, whose cost grows faster than linearly."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from runner.engine.nodes.base import StepContext, executor_of
from runner.engine.nodes.llm import run_llm_batch
from runner.engine.nodes.on_error import error_record, failure_bound, fallback, tolerable
from runner.errors import RunError, TooManyFailures
from runner.i18n import _
from runner.messages import kind_of


def model_cap(ctx: StepContext, requested: int) -> str | None:
    """Said once, when the step starts: the model's own concurrency limit (shared by every step calling it)
    is below what the step asks for, so fewer requests are in flight than the playbook says."""
    if not ctx.step.described.calls_model:
        return None
    alias = ctx.step.model or ctx.run.playbook.spec.defaults.model
    used, config = ctx.run.project.resolve_model(alias)
    if config.concurrency >= requested:
        return None
    return _("model {used} allows {concurrency} calls at once (playbook.toml [models.{used}] concurrency); this "
             "step asks for {requested}: at most {concurrency} requests run at a time").format(
        used=used, concurrency=config.concurrency, requested=requested)


def map_items(ctx: StepContext) -> list[Any]:
    items = ctx.render(ctx.step.map, what="map")
    if isinstance(items, dict):
        items = list(items.values())
    if not isinstance(items, list):
        raise RunError(_("map needs a list, not {value}").format(value=kind_of(items)), step=ctx.step.id)
    return items


def unit_size(ctx: StepContext) -> int:
    """Items per unit of work (and per journal entry): an LLM map's batch, else one."""
    return (ctx.step.batch or 1) if ctx.step.described.can_batch else 1


async def run_map(ctx: StepContext) -> tuple[list[Any], list[Any], list[dict[str, Any]]]:
    """(outputs, items, errors): outputs 1:1 with the input list; items = input merged with its output;
    errors = the items that failed under `on_error` (index, item, message), in input order. On a team server
    a large map is first run in chunks by several workers (RunContext.distribute); this pass then finds every
    unit journaled and only gathers the outputs."""
    items = map_items(ctx)
    if ctx.run.distribute is not None:
        await ctx.run.distribute(ctx, items)
    outputs, errors = await run_units(ctx, items, 0, len(items), report=True)
    ctx.run.journal_read.pop((ctx.step.id, ctx.visit), None)
    errors.sort(key=lambda e: e["index"])
    bound = failure_bound(ctx.step, len(items))
    if bound is not None and len(errors) > bound:
        shown = _("; ").join(_("item {index}: {message}").format(index=e["index"], message=e["message"])
                             for e in errors[:3])
        raise TooManyFailures(_("{failed} of {total} items failed, more than max_failures {max_failures} allows — "
                                "{shown}").format(
                                  failed=len(errors), total=len(items), max_failures=ctx.step.max_failures,
                                  shown=shown), step=ctx.step.id,
                              details={"errors": errors})
    merged = [_merge(item, out) for item, out in zip(items, outputs, strict=True)]
    return outputs, merged, errors


async def run_units(ctx: StepContext, items: list[Any], first: int, end: int, *,
                    report: bool) -> tuple[list[Any], list[dict[str, Any]]]:
    """Run the units of items[first:end] (`first` on a unit boundary), at the step's concurrency; returns
    the outputs of items[first:end] and the errors tolerated under `on_error`. `report`: progress events
    (a chunk of a distributed map leaves them to its coordinator)."""
    size = unit_size(ctx)
    units = [(start, items[start:min(start + size, end)]) for start in range(first, end, size)]
    requested = ctx.step.concurrency or ctx.run.playbook.spec.limits.concurrency
    limit = asyncio.Semaphore(requested)
    outputs: list[Any] = [None] * (end - first)
    errors: list[dict[str, Any]] = []
    done = 0
    started = time.monotonic()
    executor = executor_of(ctx.step.kind)
    assert executor is not None  # a step without one is refused when the graph is built (execute.StepNode)
    billed = ctx.step.described.billed
    hooks = ctx.run.hooks

    # a unit that groups work — an LLM batch, or an item whose sub-steps run — is reported as it starts and ends
    # (a trace's batch span); a lone item's one call or tool call needs no group of its own
    grouped = hooks.wants_batches and (size > 1 or ctx.step.described.runs_steps)

    async def run_unit(start: int, chunk: list[Any]) -> None:
        async with limit:
            # before every billed call (a cancel stops new ones within a batch); a cheap tool item checks at most
            # twice a second
            ctx.run.check_cancel(ctx.step.id, every=0.0 if billed else 0.5)
            if not grouped:
                await run_counted(start, chunk)
                return
            hooks.on_map_batch(run_id=ctx.run.run_id, step=ctx.step.id, first=start, size=len(chunk), phase="start")
            status = "failed"
            try:
                status = await run_counted(start, chunk)
            finally:
                hooks.on_map_batch(run_id=ctx.run.run_id, step=ctx.step.id, first=start, size=len(chunk), phase="end",
                                   status=status)

    async def run_counted(start: int, chunk: list[Any]) -> str:
        """Run one unit; "done", or "failed" when its failure was tolerated under `on_error`."""
        nonlocal done
        status = "done"
        try:
            if size > 1:
                results = await run_llm_batch(ctx, chunk, start)
            else:
                results = [await executor(ctx, chunk[0], with_item=True)]
        except BaseException as exc:
            if not tolerable(ctx.step, exc, item=True):
                raise
            # one bad item (or batch) is recorded, not fatal; a resume tries it again
            errors.extend(error_record(exc, index=start + k, item=it) for k, it in enumerate(chunk))
            results = [fallback(ctx.step)] * len(chunk)
            status = "failed"
        outputs[start - first:start - first + len(chunk)] = results
        done += len(chunk)
        if report:
            elapsed = time.monotonic() - started
            hooks.on_map_progress(run_id=ctx.run.run_id, step=ctx.step.id, done=done, total=len(items),
                                  batch_done=True, rate=round(done / elapsed, 2) if elapsed > 0 else None)
        return status

    if report:
        ctx.run.hooks.on_map_progress(run_id=ctx.run.run_id, step=ctx.step.id, done=0, total=len(items),
                                      batch_done=False, rate=None,
                                      **({"notice": capped} if (capped := model_cap(ctx, requested)) else {}))
    tasks = [asyncio.ensure_future(run_unit(start, chunk)) for start, chunk in units]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return outputs, errors


def _merge(item: Any, out: Any) -> Any:
    """One entry of `steps.<id>.items`: a dict item with its output's fields; any other item as `item`
    beside its output's fields (or beside `output` when the output is not a dict). Nothing is stored
    twice: a map's items live in the checkpointed state."""
    if isinstance(item, dict) and isinstance(out, dict):
        return {**item, **out}
    if isinstance(out, dict):
        return {**out, "item": item}
    return {"item": item, "output": out}
