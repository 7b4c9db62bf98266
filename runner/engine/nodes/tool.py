"""`tool` steps: render the arguments, check them against the tool's input model, call, journal."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pydantic

from runner.cpu_slots import cpu_turn
from runner.engine.nodes.base import StepContext, digest, step_kind
from runner.errors import RunError, framed
from runner.i18n import _
from runner.messages import merged
from runner.registry import ToolArgumentError, get_tool, output_value


@step_kind("tool")
async def run_tool(ctx: StepContext, item: Any, *, with_item: bool) -> Any:
    assert ctx.step.tool is not None
    info = get_tool(ctx.step.tool)
    raw = ctx.render(ctx.step.with_ or {}, item, with_item=with_item, what="with")
    masked = raw if info.sends_secrets else ctx.run.redact.value(raw)
    said: dict[str, str] = {}
    if masked != raw:  # a secret (a key a model echoed) is not written, sheeted or posted: `***` goes instead
        said["notice"] = _("the arguments of {tool} held a secret's value, replaced by *** (did a model repeat a "
                           "secret?)").format(tool=info.name)
        raw = masked
    used, fixed = ctx.fixture_for(info.name, raw)
    if fixed is not None:
        ctx.run.hooks.on_tool_call(run_id=ctx.run.run_id, step=ctx.step.id, tool=info.name, args=raw,
                                   seconds=0.0, fixture=True, **said)
        return fixed[0]
    try:
        args = info.input_model.model_validate(used)
    except pydantic.ValidationError as exc:
        problems = _("; ").join(_("argument '{where}': {message}").format(where=where, message=message)
                                if where else message for where, message in merged(exc.errors())[:5])
        raise RunError(framed(info.name, problems), step=ctx.step.id) from None

    def waiting() -> None:  # said once per step (a map's items would say it for every item)
        if ctx.step.map is None:
            ctx.run.hooks.on_map_progress(run_id=ctx.run.run_id, step=ctx.step.id, done=0, total=1, rate=None,
                                          batch_done=False, notice=_(
                                              "{name} is waiting for a CPU (other runs on this machine use them); "
                                              "its timeout counts from when it gets one").format(name=info.name))

    async def call() -> Any:
        started = time.monotonic()
        try:
            async with cpu_turn(waiting=waiting) if info.cpu_bound else contextlib.nullcontext():
                result = await asyncio.wait_for(info.function(args, ctx.tool_context()), ctx.timeout)
        except TimeoutError:
            raise RunError(_("{name} did not finish within {timeout:g} s (if it really needs longer, raise this "
                             "step's timeout:)").format(
                               name=info.name, timeout=ctx.timeout),
                           step=ctx.step.id, details={"kind": "timeout"}) from None
        except ToolArgumentError as exc:
            where = _("argument '{argument}': ").format(argument=exc.argument) if exc.about_the_argument else ""
            raise RunError(framed(info.name, where + str(exc)), step=ctx.step.id,
                           details=getattr(exc, "details", None)) from None
        except (ValueError, OSError, LookupError) as exc:
            raise RunError(framed(info.name, str(exc)), step=ctx.step.id) from None
        ctx.run.hooks.on_tool_call(run_id=ctx.run.run_id, step=ctx.step.id, tool=info.name, args=raw,
                                   seconds=round(time.monotonic() - started, 3), **said)
        return output_value(result)

    return await ctx.once(f"tool:{digest(raw)}", call) if info.journal else await call()
