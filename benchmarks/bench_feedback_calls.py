"""LLM calls and tokens of feedback_digest against a one-call-per-comment design, on the real reviews.

    python benchmarks/bench_feedback_calls.py [--sizes 1000 2000]

Both playbooks run against the fake OpenAI-compatible server on loopback (through litellm), approvals
scripted. Calls are counted at the server; tokens are counted on what crossed the wire (the messages
plus the JSON Schema sent as response_format, and the reply text) with litellm's cl100k tokenizer,
not taken from the fake server's own usage figures. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from runner.config import load_project  # noqa: E402
from runner.dsl.inputs import resolve_inputs  # noqa: E402
from runner.dsl.validate import load_and_validate  # noqa: E402
from runner.engine.execute import Runner  # noqa: E402
from runner.testing import FakeLLMServer  # noqa: E402

REVIEWS = ROOT / "examples" / "reviews_zh.csv"
DESIGNS = {"feedback_digest (dedupe + clusters + batches)": ROOT / "playbooks" / "feedback_digest.yaml",
           "one call per comment": ROOT / "benchmarks" / "naive_feedback_digest.yaml"}


def tokens(entry: dict[str, Any]) -> tuple[int, int]:
    import litellm

    sent = litellm.token_counter(model="gpt-3.5-turbo", messages=entry["messages"])
    if entry.get("response_format"):
        sent += litellm.token_counter(model="gpt-3.5-turbo", text=json.dumps(entry["response_format"],
                                                                                ensure_ascii=False))
    received = litellm.token_counter(model="gpt-3.5-turbo", text=entry.get("reply") or "", count_response_tokens=True)
    return sent, received


async def run(path: Path, size: int) -> None:
    playbook = load_and_validate(path)
    runner = Runner(load_project())
    try:
        inputs = resolve_inputs(playbook.spec, {"comments": str(REVIEWS), "limit": size}, file=str(path))
        outcome = await runner.start(playbook, inputs)
        while outcome.status == "waiting":
            outcome = await runner.resume(outcome.run_id, decision={"action": "approve", "by": "bench",
                                                                    "at": time.time()})
        assert outcome.status == "done", outcome.error
    finally:
        runner.close()


def measure(size: int) -> list[tuple[str, int, int, int, float]]:
    rows = []
    for name, path in DESIGNS.items():
        with FakeLLMServer() as server, tempfile.TemporaryDirectory() as folder:
            os.chdir(folder)
            Path("playbook.toml").write_text(server.toml(), encoding="utf-8")
            os.environ["FAKE_LLM_API_KEY"] = "bench"
            started = time.perf_counter()
            asyncio.run(run(path, size))
            seconds = time.perf_counter() - started
            counted = [tokens(entry) for entry in server.requests]
            rows.append((name, len(server.requests), sum(t[0] for t in counted), sum(t[1] for t in counted), seconds))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000])
    args = parser.parse_args()
    print("| reviews | design | LLM calls | input tokens | output tokens | wall (fake server, 0 ms) |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        rows = measure(size)
        for name, calls, sent, received, seconds in rows:
            print(f"| {size:,} | {name} | {calls:,} | {sent:,} | {received:,} | {seconds:.1f} s |")
        (_, c1, s1, r1, _), (_, c2, s2, r2, _) = rows
        print(f"| {size:,} | ratio (one-per-comment / ours) | {c2 / c1:.1f}× | {s2 / s1:.1f}× | {r2 / r1:.1f}× | |")


if __name__ == "__main__":
    main()
