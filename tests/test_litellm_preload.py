"""litellm (seconds of CPU to import) loads in the background as soon as a run that calls a remote model
starts, while its first steps run — not on the event loop at the first LLM call."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from runner.testing import FakeLLMServer
from runner.testing.loopback import LoopbackHTTPServer
from tests.conftest import write_playbook

SLOW_FIRST = """
name: slow_first
steps:
  - id: wait
    tool: http.request
    with: {url: "URL", timeout: 30}
  - id: answer
    llm: {prompt: 一句话}
outputs: {text: "${{ steps.answer.output }}"}
"""

CHILD = """
import asyncio, json, sys
from runner.config import load_project
from runner.dsl.inputs import resolve_inputs
from runner.dsl.validate import load_and_validate
from runner.engine.events import Hooks
from runner.engine.execute import Runner


class Watch(Hooks):
    seen = {}

    def on_step_start(self, **event):
        self.seen[event["step"]] = "litellm" in sys.modules  # imported (or importing) when the step starts?


async def main():
    playbook = load_and_validate(sys.argv[1])
    runner = Runner(load_project(), hooks=[Watch()])
    outcome = await runner.start(playbook, resolve_inputs(playbook.spec, {}, file=sys.argv[1]))
    runner.close()
    print(json.dumps({"status": outcome.status, "error": outcome.error, "at_step_start": Watch.seen,
                      "at_the_end": "litellm" in sys.modules}))

asyncio.run(main())
"""


@pytest.mark.parametrize("model", ["deepseek/deepseek-chat", "openai/fake"])
def test_litellm_is_loaded_while_the_first_step_still_waits(project_dir: Path, server: FakeLLMServer,
                                                            model: str) -> None:
    """A provider litellm calls: imported from the run's start. An OpenAI-compatible `api_base` server
    (called through the openai SDK, runner/models/openai_compatible.py): never imported at all."""
    (project_dir / "playbook.toml").write_text(
        f'[models.default]\nmodel = "{model}"\napi_base = "{server.url}"\n\n[web]\nallow_private = ["127.0.0.1"]\n',
        encoding="utf-8")
    class Slow(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            time.sleep(6)  # longer than litellm takes to import, even on a busy machine
            body = json.dumps({"ok": True}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    slow = LoopbackHTTPServer(("127.0.0.1", 0), Slow)
    import threading

    threading.Thread(target=slow.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{slow.server_address[1]}/slow"
        path = write_playbook(project_dir, SLOW_FIRST.replace("URL", url))
        done = subprocess.run([sys.executable, "-c", CHILD, str(path)], cwd=project_dir, capture_output=True,
                              text=True, timeout=120)
    finally:
        slow.shutdown()
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "done", result["error"]
    if model.startswith("openai/"):
        assert result["at_step_start"] == {"wait": False, "answer": False} and not result["at_the_end"]
    else:  # the run started importing it at once; without that, the LLM step itself would begin the import
        assert result["at_step_start"] == {"wait": True, "answer": True}
    assert len(server.requests) == 1
