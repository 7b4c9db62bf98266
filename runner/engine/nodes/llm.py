"""`llm` steps: one prompt → text or a validated object; in a map, several items per call."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from pydantic import BaseModel

from runner.dsl.llm_spec import parameter_value
from runner.dsl.output_schema import to_model, unwrap
from runner.engine.nodes.base import StepContext, digest, step_kind
from runner.errors import RunError, framed
from runner.i18n import _
from runner.messages import kind_of
from runner.models.images import ImageError, image_part
from runner.models.llm import LlmRequest
from runner.registry import ToolArgumentError
from runner.wording import readable

MAX_REASKS = 2


def _messages(ctx: StepContext, item: Any, with_item: bool) -> list[dict[str, Any]]:
    """system, messages (few-shot turns), history, prompt — then the images, with the last user message."""
    spec = ctx.step.llm
    assert spec is not None

    def said(text: str, what: str) -> str:
        return str(ctx.render(text, item, with_item=with_item, what=what))

    messages: list[dict[str, Any]] = []
    if spec.system:
        messages.append({"role": "system", "content": said(spec.system, "llm.system")})
    for j, message in enumerate(spec.messages or []):
        messages.append({"role": message.role, "content": said(message.content, f"llm.messages[{j}].content")})
    if spec.history is not None:
        messages += history_turns(ctx.render(spec.history, item, with_item=with_item, what="llm.history"),
                                  ctx.step.id)
    if spec.prompt is not None:
        messages.append({"role": "user", "content": said(spec.prompt, "llm.prompt")})
    if spec.images is not None:
        _attach_images(ctx, messages, ctx.render(spec.images, item, with_item=with_item, what="llm.images"))
    return messages


def history_turns(value: Any, step: str) -> list[dict[str, Any]]:
    """Earlier turns of a conversation, [{role: user|assistant|system, content}], as messages; None: none."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise RunError(_("llm.history: expected a list of turns [{{role, content}}], got {value}").format(
                           value=kind_of(value)), step=step)
    turns = []
    for j, turn in enumerate(value):
        if not (isinstance(turn, dict) and turn.get("role") in ("user", "assistant", "system")
                and isinstance(turn.get("content"), str)):
            raise RunError(_("llm.history[{index}]: a turn is {{role: user or assistant, content: text}}, not "
                             "{value}").format(index=j, value=readable(turn, 80)), step=step)
        turns.append({"role": turn["role"], "content": turn["content"]})
    return turns


def _attach_images(ctx: StepContext, messages: list[dict[str, Any]], given: Any) -> None:
    files = ctx.tool_context()
    try:
        parts = [image_part(image, lambda path: files.input_path(path, "images"))
                 for image in (given if isinstance(given, list) else [given]) if image not in (None, "")]
    except (ImageError, ToolArgumentError) as exc:
        raise RunError(framed("llm.images", str(exc)), step=ctx.step.id) from None
    if not parts:
        return
    last_user = next((m for m in reversed(messages) if m["role"] == "user"), None)
    if last_user is None:
        messages.append({"role": "user", "content": parts})
    else:
        last_user["content"] = [{"type": "text", "text": last_user["content"]}, *parts]


def _sampling(ctx: StepContext, item: Any, with_item: bool) -> dict[str, Any]:
    """The step's model parameters as numbers: an expression is computed now and held to the same bounds."""
    spec = ctx.step.llm
    assert spec is not None
    values: dict[str, Any] = {}
    for name, value in spec.sampling.items():
        if isinstance(value, str):
            value = ctx.render(value, item, with_item=with_item, what=f"llm.{name}")
            if value is None:
                continue  # `${{ inputs.top_p }}` of an input not given: the provider's default
            try:
                value = parameter_value(name, value)
            except ValueError as exc:
                raise RunError(framed(f"llm.{name}", str(exc)), step=ctx.step.id) from None
        values[name] = value
    if spec.stop is not None:
        values["stop"] = spec.stop
    return values


def _journal_key(messages: list[dict[str, Any]], sampling: dict[str, Any]) -> str:
    """The messages, and the parameters added with `top_p` & co. (a resume with other values asks again).
    Temperature and max_tokens never keyed the journal: a run recorded before those were added resumes as it was."""
    added = {k: v for k, v in sampling.items() if k not in ("temperature", "max_tokens")}
    return digest([messages, added] if added else messages)


def _request(ctx: StepContext, messages: list[dict[str, Any]], model: type[BaseModel] | None,
             schema: dict[str, Any] | None = None, sampling: dict[str, Any] | None = None) -> LlmRequest:
    sampling = dict(sampling or {})
    temperature = sampling.pop("temperature", ctx.defaults.temperature)
    max_tokens = sampling.pop("max_tokens", ctx.defaults.max_tokens)
    return LlmRequest(alias=ctx.step.model or ctx.defaults.model, messages=messages, output_model=model,
                      temperature=temperature, max_tokens=max_tokens, timeout=ctx.timeout, retry=ctx.retry,
                      cache=ctx.step.cache, step=ctx.step.id, schema=schema, sampling=sampling)


@step_kind("llm")
async def run_llm(ctx: StepContext, item: Any, *, with_item: bool) -> Any:
    model = ctx.run.playbook.output_models.get(ctx.step.id)
    messages = _messages(ctx, item, with_item)
    sampling = _sampling(ctx, item, with_item)

    async def call() -> Any:
        result = await ctx.call_llm(_request(ctx, messages, model, sampling=sampling))
        return unwrap(model, result.content) if model else result.content

    return await ctx.once(f"llm:{_journal_key(messages, sampling)}", call)


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
    assert spec.prompt is not None  # validate refuses a batch with no per-item prompt
    has_schema = ctx.run.playbook.output_models.get(ctx.step.id) is not None
    sampling = _sampling(ctx, None, False)  # validate refused item references outside the prompt of a batch
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
        for j, message in enumerate(spec.messages or []):
            messages.append({"role": message.role,
                             "content": str(ctx.render(message.content, what=f"llm.messages[{j}].content"))})
        messages.append({"role": "user", "content": header + body})
        model, sent = _batch_schema(ctx, pending)

        async def call(messages: list[dict[str, Any]] = messages, model: type[BaseModel] = model,
                       sent: dict[str, Any] = sent) -> Any:
            result = await ctx.call_llm(_request(ctx, messages, model, sent, sampling))
            return result.content

        content = await ctx.once(f"batch:{pending[0]}:{_journal_key(messages, sampling)}", call)
        for entry in content.get("items", []):
            index = entry.pop("index", None)
            if index in pending and index not in results:  # extra or repeated items are dropped
                results[index] = entry if has_schema else entry.get("text")
        pending = [i for i in pending if i not in results]
    return [results[i] for i in range(start, start + len(items))]
