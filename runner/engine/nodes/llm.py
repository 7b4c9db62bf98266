"""`llm` steps: one prompt → text or a validated object; in a map, several items per call."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from pydantic import BaseModel

from runner.dsl.output_schema import to_model, unwrap
from runner.engine.nodes.base import StepContext, digest, step_kind
from runner.models.llm import LlmRequest

MAX_REASKS = 2


def _messages(ctx: StepContext, item: Any, with_item: bool) -> list[dict[str, Any]]:
    spec = ctx.step.llm
    assert spec is not None
    messages = []
    if spec.system:
        messages.append({"role": "system", "content": str(ctx.render(spec.system, item, with_item=with_item,
                                                                       what="llm.system"))})
    prompt = ctx.render(spec.prompt, item, with_item=with_item, what="llm.prompt")
    messages.append({"role": "user", "content": str(prompt)})
    return messages


def _request(ctx: StepContext, messages: list[dict[str, Any]], model: type[BaseModel] | None,
             schema: dict[str, Any] | None = None) -> LlmRequest:
    spec = ctx.step.llm
    assert spec is not None
    temperature = spec.temperature if spec.temperature is not None else ctx.defaults.temperature
    return LlmRequest(alias=ctx.step.model or ctx.defaults.model, messages=messages, output_model=model,
                      temperature=temperature, max_tokens=spec.max_tokens or ctx.defaults.max_tokens,
                      timeout=ctx.timeout, retry=ctx.retry, cache=ctx.step.cache, step=ctx.step.id,
                      schema=schema)


@step_kind("llm")
async def run_llm(ctx: StepContext, item: Any, *, with_item: bool) -> Any:
    model = ctx.run.playbook.output_models.get(ctx.step.id)
    messages = _messages(ctx, item, with_item)

    async def call() -> Any:
        result = await ctx.call_llm(_request(ctx, messages, model))
        return unwrap(model, result.content) if model else result.content

    return await ctx.once(f"llm:{digest(messages)}", call)


def _batch_schema(ctx: StepContext, indexes: list[int]) -> tuple[type[BaseModel], dict[str, Any]]:
    """Validation model (lenient about count) and the schema sent (exact count, index enum)."""
    model, schema_text = _batch_model(ctx.run.playbook.output_models.get(ctx.step.id), ctx.step.id)
    sent = json.loads(schema_text)
    sent_items = sent["properties"]["items"]
    sent_items.update(minItems=len(indexes), maxItems=len(indexes))
    target = sent_items["items"]
    if "$ref" in target:
        target = sent["$defs"][target["$ref"].split("/")[-1]]
    target["properties"]["index"] = {"type": "integer", "enum": indexes}
    return model, sent


@lru_cache(maxsize=256)
def _batch_model(item_model: type[BaseModel] | None, step_id: str) -> tuple[type[BaseModel], str]:
    """Built once per step: pydantic model creation and schema generation cost ~1 ms a batch."""
    if item_model is not None:
        item_schema = item_model.model_json_schema()
        defs = item_schema.pop("$defs", {})
    else:
        item_schema, defs = {"type": "object", "properties": {"text": {"type": "string"}},
                             "required": ["text"], "additionalProperties": False}, {}
    props = {"index": {"type": "integer"}, **item_schema.get("properties", {})}
    entry = {"type": "object", "properties": props, "required": ["index", *item_schema.get("required", [])],
             "additionalProperties": False}
    lenient = {"type": "object", "properties": {"items": {"type": "array", "items": entry}},
               "required": ["items"], "additionalProperties": False}
    model = to_model({**lenient, "$defs": defs} if defs else lenient, f"{step_id}_batch")
    return model, json.dumps(model.model_json_schema(), ensure_ascii=False)


async def run_llm_batch(ctx: StepContext, items: list[Any], start: int) -> list[Any]:
    """Outputs for items[start:start+len(items)], re-aligned 1:1; missing items are re-asked."""
    spec = ctx.step.llm
    assert spec is not None
    has_schema = ctx.run.playbook.output_models.get(ctx.step.id) is not None
    results: dict[int, Any] = {}
    pending = list(range(start, start + len(items)))
    for round_ in range(MAX_REASKS + 1):
        if not pending:
            break
        if round_ == MAX_REASKS:  # last resort: one call per item still missing
            for index in pending:
                results[index] = await run_llm(ctx, items[index - start], with_item=True)
            break
        prompts = [ctx.render(spec.prompt, items[i - start], with_item=True, what="llm.prompt")
                   for i in pending]
        body = "\n\n".join(f"### 第 {i} 条\n{p}" for i, p in zip(pending, prompts, strict=True))
        header = (f"下面共有 {len(pending)} 条待处理内容，每条以「### 第 N 条」开头。"
                  "请对每一条分别完成同样的任务，在 items 中为每条返回一项，index 填该条的编号 N，"
                  "不要遗漏或合并。\n\n")
        messages = []
        if spec.system:
            messages.append({"role": "system", "content": str(ctx.render(spec.system, what="llm.system"))})
        messages.append({"role": "user", "content": header + body})
        model, sent = _batch_schema(ctx, pending)

        async def call(messages: list[dict[str, Any]] = messages, model: type[BaseModel] = model,
                       sent: dict[str, Any] = sent) -> Any:
            result = await ctx.call_llm(_request(ctx, messages, model, sent))
            return result.content

        content = await ctx.once(f"batch:{pending[0]}:{digest(messages)}", call)
        for entry in content.get("items", []):
            index = entry.pop("index", None)
            if index in pending and index not in results:  # extra or repeated items are dropped
                results[index] = entry if has_schema else entry.get("text")
        pending = [i for i in pending if i not in results]
    return [results[i] for i in range(start, start + len(items))]
