"""Every shipped playbook on its example input with the embedded `local` model (no key, no network).

    python benchmarks/local_examples.py [--only NAME ...]

Runs in a fresh temporary project (no playbook.toml, so `default` resolves to `local`), approves every
approval as it comes, serves the trend snapshots on loopback, and prints a markdown table of wall time,
status, LLM calls and tokens per playbook. The 270M base model's text is smoke-test quality; what this
shows is that each playbook runs end to end on a laptop-class CPU, and how long that takes.
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

import yaml  # noqa: E402

from runner.config import load_project  # noqa: E402
from runner.dsl.inputs import resolve_inputs  # noqa: E402
from runner.dsl.validate import load_and_validate  # noqa: E402
from runner.engine.execute import Runner, RunOutcome  # noqa: E402
from runner.testing import serve_directory  # noqa: E402

EX = ROOT / "examples"


def retro_inputs() -> dict[str, Any]:
    data = yaml.safe_load((EX / "retro" / "inputs.yaml").read_text(encoding="utf-8"))
    return {k: str(ROOT / v) if k in ("metrics", "feedback", "notes") else v for k, v in data.items()}


async def run(name: str, inputs: dict[str, Any]) -> tuple[RunOutcome, int]:
    path = ROOT / "playbooks" / f"{name}.yaml"
    playbook = load_and_validate(path)
    runner = Runner(load_project())
    try:
        outcome = await runner.start(playbook, resolve_inputs(playbook.spec, inputs, file=str(path)))
        while outcome.status == "waiting":
            outcome = await runner.resume(outcome.run_id, decision={"action": "approve", "by": "bench",
                                                                    "at": time.time()})
        events = Path(outcome.run_dir) / "events.jsonl"
        calls = sum(1 for line in events.read_text(encoding="utf-8").splitlines()
                    if json.loads(line).get("event") == "llm_call")
        return outcome, calls
    finally:
        runner.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args()
    os.chdir(tempfile.mkdtemp(prefix="local-examples-"))
    plan_doc: str | None = None
    print("| playbook | example input | status | wall | LLM calls | tokens |")
    print("|---|---|---|---|---|---|")
    with serve_directory(EX / "trends") as base:
        cases: list[tuple[str, str, Any]] = [
            ("feedback_digest", "first 40 of examples/reviews_zh.csv",
             lambda: {"comments": str(EX / "reviews_zh.csv"), "limit": 40, "max_replies": 5}),
            ("kpi_report", "examples/kpi_page_views.csv", lambda: {"table": str(EX / "kpi_page_views.csv")}),
            ("trend_scan", "weibo 2026-08-17 (first run), per_source 50, no feed",
             lambda: {"hot_lists": [f"{base}/weibo/2026-08-17.json"], "keywords": ["AI", "手机"], "per_source": 50}),
            ("trend_scan", "weibo 2026-08-18 (diff against 08-17), per_source 50, no feed",
             lambda: {"hot_lists": [f"{base}/weibo/2026-08-18.json"], "keywords": ["AI", "手机"], "per_source": 50}),
            ("campaign_plan", "examples/campaign_plan.yaml",
             lambda: yaml.safe_load((EX / "campaign_plan.yaml").read_text(encoding="utf-8"))),
            ("material_brief", "the campaign_plan run's campaign_plan.md",
             lambda: {"plan": plan_doc or str(EX / "campaign_plan.yaml"), "formats": ["push", "小红书笔记"]}),
            ("retro", "examples/retro/inputs.yaml", retro_inputs),
        ]
        for name, label, make_inputs in cases:
            if args.only and name not in args.only:
                continue
            started = time.perf_counter()
            outcome, calls = asyncio.run(run(name, make_inputs()))
            wall = time.perf_counter() - started
            if name == "campaign_plan" and outcome.status == "done":
                plan_doc = outcome.outputs["document"]
            status = outcome.status if outcome.status == "done" else f"{outcome.status}: {outcome.error}"
            print(f"| {name} | {label} | {status} | {wall:.0f} s | {calls} | "
                  f"{outcome.tokens_in + outcome.tokens_out:,} |", flush=True)


if __name__ == "__main__":
    main()
