"""`agent` steps: an LLM that may call the tools the step lists (function calling), for up to
`max_turns` turns. Tool errors go back to the model as the tool's answer; every model turn and every
tool call is journaled like any other step's work, so a resume repeats none of them."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from typing import Any

import pydantic

from runner.dsl.output_schema import unwrap
from runner.engine.nodes.base import StepContext, digest, step_kind
from runner.errors import RunError
from runner.i18n import _
from runner.messages import summarise
from runner.models.llm import LlmRequest, json_schema, parse_structured
from runner.registry import ToolArgumentError, ToolInfo, get_tool

MAX_TOOL_ANSWER = 8000  # characters of a tool's JSON answer the model sees


def function_name(tool_name: str) -> str:
    return tool_name.replace(".", "__")  # providers allow [a-zA-Z0-9_-] in function names


@step_kind("agent")
async def run_agent(ctx: StepContext, item: Any, *, with_item: bool) -> Any:
    spec = ctx.step.agent
    assert spec is not None
    tools = {function_name(name): get_tool(name) for name in spec.tools}
    definitions = [{"type": "function", "function": {"name": fn, "description": info.description,
                                                     "parameters": json_schema(info.input_model)}}
                   for fn, info in tools.items()]
    messages: list[dict[str, Any]] = []
    if spec.system:
        messages.append({"role": "system", "content": str(ctx.render(spec.system, item, with_item=with_item,
                                                                       what="agent.system"))})
    messages.append({"role": "user", "content": str(ctx.render(spec.prompt, item, with_item=with_item,
                                                                 what="agent.prompt"))})
    request = LlmRequest(alias=ctx.step.model or ctx.defaults.model, messages=[], timeout=ctx.timeout,
                         retry=ctx.retry, max_tokens=spec.max_tokens or ctx.defaults.max_tokens,
                         temperature=spec.temperature if spec.temperature is not None else ctx.defaults.temperature,
                         cache=ctx.step.cache, step=ctx.step.id)
    for turn in range(spec.max_turns):
        sent = list(messages)

        async def ask(sent: list[dict[str, Any]] = sent) -> dict[str, Any]:
            result = await ctx.call_llm(replace(request, messages=sent, tools=definitions))
            return {"text": result.text, "tool_calls": result.tool_calls}

        reply = await ctx.once(f"agent:{turn}:{digest(messages)}", ask)
        if not reply["tool_calls"]:
            return await _final(ctx, messages, reply["text"], request)
        messages.append({"role": "assistant", "content": reply["text"] or None, "tool_calls": [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in reply["tool_calls"]]})
        for call in reply["tool_calls"]:
            async def use(call: dict[str, Any] = call) -> str:
                return await _call_tool(ctx, tools, call)

            answer = await ctx.once(f"agent:{turn}:tool:{digest(call)}", use)
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": answer})
    raise RunError(_("the agent did not finish within max_turns={max_turns}; raise max_turns or narrow the "
                     "task").format(max_turns=spec.max_turns), step=ctx.step.id)


async def _call_tool(ctx: StepContext, tools: dict[str, ToolInfo], call: dict[str, Any]) -> str:
    """The tool's answer as the model will read it; any failure becomes an error message, not a crash."""
    info = tools.get(call["name"])
    if info is None:  # the model may only use what the step lists
        return f"error: no tool '{call['name']}'; available: {', '.join(tools)}"
    try:
        raw, fixed = ctx.fixture_for(info.name, json.loads(call["arguments"] or "{}"))
        if fixed is not None:
            return json.dumps(fixed[0], ensure_ascii=False, default=str)[:MAX_TOOL_ANSWER]
        args = info.input_model.model_validate(raw)
    except json.JSONDecodeError as exc:
        return f"error: arguments are not valid JSON ({exc.msg})"
    except pydantic.ValidationError as exc:
        problems = summarise(exc.errors())
        return f"error: invalid arguments for {info.name}: {problems}"
    started = time.monotonic()
    try:
        result = await asyncio.wait_for(info.function(args, ctx.tool_context()), ctx.timeout)
    except TimeoutError:
        return f"error: {info.name} timed out after {ctx.timeout:g}s"
    except ToolArgumentError as exc:
        return f"error: {info.name}: argument '{exc.argument}': {exc}"
    except (ValueError, OSError, LookupError) as exc:
        return f"error: {info.name}: {exc}"
    finally:
        ctx.run.hooks.on_tool_call(run_id=ctx.run.run_id, step=ctx.step.id, tool=info.name, via="agent",
                                   seconds=round(time.monotonic() - started, 3))
    data = result.model_dump(mode="json") if isinstance(result, pydantic.BaseModel) else result
    text = json.dumps(data, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_TOOL_ANSWER else text[:MAX_TOOL_ANSWER] + "…(truncated)"


async def _final(ctx: StepContext, messages: list[dict[str, Any]], text: str, request: LlmRequest) -> Any:
    model = ctx.run.playbook.output_models.get(ctx.step.id)
    if model is None:
        return text
    try:
        return unwrap(model, parse_structured(text, model))
    except ValueError:
        pass  # ask once more for the answer in the schema, without tools

    async def structure() -> Any:
        follow = [*messages, {"role": "assistant", "content": text},
                  {"role": "user", "content": "请把你的最终答案整理成 JSON。"}]
        result = await ctx.call_llm(replace(request, messages=follow, output_model=model))
        return unwrap(model, result.content)

    return await ctx.once(f"agent:final:{digest(text)}", structure)
