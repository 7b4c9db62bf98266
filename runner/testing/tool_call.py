"""Call one registered tool as a step would, outside any playbook."""

from __future__ import annotations

from pathlib import Path
from typing import Any


async def call_tool(name: str, args: dict[str, Any], *, run_dir: Path, settings: Any = None) -> Any:
    """Call a registered tool directly, as a step would (for testing tools in isolation). Without `settings`, the
    project's defaults — except that the web tools may reach loopback, where the test doubles are served."""
    from runner.config import ProjectFile
    from runner.registry import ToolContext, close_resources, get_tool, run_started

    info = get_tool(name)
    run_dir.mkdir(parents=True, exist_ok=True)
    # reads as in a project holding the run folder (and the working directory, for fixtures)
    ctx = ToolContext(run_id="test", step_id="test", run_dir=run_dir, project_dir=run_dir,
                      settings=settings or ProjectFile.model_validate({"web": {"allow_private": ["127.0.0.1"]}}),
                      readable_paths=(Path.cwd(), run_dir.parent))
    run_started()
    try:
        return await info.function(info.input_model.model_validate(args), ctx)
    finally:
        await close_resources()
