"""An example plugin: importing this module registers `example.reverse`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from runner.registry import ToolContext, tool


class ReverseInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


class ReverseOutput(BaseModel):
    text: str


@tool("example.reverse")
async def reverse(args: ReverseInput, ctx: ToolContext) -> ReverseOutput:
    """Reverse a text (an example third-party tool)."""
    return ReverseOutput(text=args.text[::-1])
