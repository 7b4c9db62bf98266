"""file.write: markdown, json and text artifacts in the run folder."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from runner.registry import ToolContext, tool


class FileWriteInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="file name in the run folder, e.g. report.md")
    content: Any = Field(description="text, or any value (written as JSON)")
    format: Literal["auto", "text", "markdown", "json"] = "auto"


class FileWriteOutput(BaseModel):
    path: str
    bytes: int


@tool("file.write")
async def file_write(args: FileWriteInput, ctx: ToolContext) -> FileWriteOutput:
    """Write a markdown, json or text artifact."""
    target = ctx.artifact_path(args.path)
    as_json = args.format == "json" or (args.format == "auto" and (
        target.suffix.lower() == ".json" or not isinstance(args.content, str)))
    text = json.dumps(args.content, ensure_ascii=False, indent=2, default=str) + "\n" if as_json else str(args.content)
    data = text.encode("utf-8")
    target.write_bytes(data)
    return FileWriteOutput(path=str(target), bytes=len(data))
