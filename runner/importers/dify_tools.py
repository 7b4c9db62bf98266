"""Dify's built-in tools that have an equivalent here. Pure data and lookups."""

from __future__ import annotations

from typing import Any

# (provider, tool) → (our tool, {our argument: their parameter})
AS_TOOLS = {("jina", "jina_reader"): ("web.fetch", {"url": "url"}),
            ("webscraper", "webscraper"): ("web.fetch", {"url": "url"}),
            ("firecrawl", "scrape"): ("web.fetch", {"url": "url"})}
# (provider, tool) → a template of its configuration, for a tool that only computes a value
AS_TEMPLATES = {("time", "current_time"): "${{{{ 'now' | date({format!r}, {timezone!r}) }}}}"}


def tool_key(data: dict[str, Any]) -> tuple[str, str]:
    return (str(data.get("provider_id") or data.get("provider_name") or "").split("/")[-1],
            str(data.get("tool_name")))


def as_template(data: dict[str, Any]) -> str | None:
    """The template step a value-only tool becomes, or None."""
    pattern = AS_TEMPLATES.get(tool_key(data))
    if pattern is None:
        return None
    config = {**(data.get("tool_configurations") or {})}
    return pattern.format(format=str(config.get("format") or "%Y-%m-%d %H:%M:%S"),
                          timezone=str(config.get("timezone") or "Asia/Shanghai"))
