"""feedback_digest on 1,000 real reviews at a fixed model latency: time to the approval pause and from
`approve` to done, each against the critical-path ideal.

    python benchmarks/bench_feedback_latency.py [--latency 3] [--limit 1000] [--concurrency 8,16] [--runs 3]

The fake OpenAI-compatible server runs in its own process and answers every request after `--latency`
seconds. Each run is the real command in a fresh project: `playbook run … -i limit=N` until it pauses,
then `playbook approve` in a second process, as a user would. The ideal counts LLM waves on the longest
dependency chain: before the pause, `label` and `cluster_notes` run side by side (each at most the
step's concurrency, together at most the model's), then `themes`; after it, `good_cases` beside
`replies`. Every other step (load, dedupe, clustering, sheets, report) is local and counted as zero.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.fake_server_process import fake_server  # noqa: E402

STEP_CONCURRENCY = 8  # feedback_digest's `limits.concurrency`



def command(args: list[str], cwd: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYBOOK_")}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "runner", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=1800)
    if done.returncode not in (0, 3):  # 3: waiting for approval
        raise SystemExit(f"{args[0]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return time.monotonic() - started


def calls_per_step(project: Path, run_id: str) -> dict[str, int]:
    calls: dict[str, int] = {}
    for line in (project / ".playbook" / "runs" / run_id / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "step_end" and event.get("llm_calls"):
            calls[event["step"]] = calls.get(event["step"], 0) + int(event["llm_calls"])
    return calls


def ideal_waves(calls: dict[str, int], model_cap: int) -> tuple[int, int]:
    per_step = min(STEP_CONCURRENCY, model_cap)
    label, notes = calls.get("label", 0), calls.get("cluster_notes", 0)
    before = max(math.ceil(label / per_step), math.ceil(notes / per_step),
                 math.ceil((label + notes) / model_cap)) + calls.get("themes", 0)
    good, replies = calls.get("good_cases", 0), calls.get("replies", 0)
    after = max(good, math.ceil(replies / per_step), math.ceil((good + replies) / model_cap))
    return before, after


def one_run(url: str, model_cap: int, limit: int, tag: str) -> dict[str, object]:
    project = Path(tempfile.mkdtemp(prefix="bench-feedback-"))
    shutil.copytree(ROOT / "playbooks", project / "playbooks")
    shutil.copytree(ROOT / "examples", project / "examples")
    (project / "playbook.toml").write_text(
        f'[models.default]\nmodel = "openai/fake"\napi_base = "{url}"\nconcurrency = {model_cap}\n')
    run_id = f"bench-{tag}"
    to_pause = command(["run", "playbooks/feedback_digest.yaml", "-i", "comments=examples/reviews_zh.csv",
                        "-i", f"limit={limit}", "-i", "product=我们的产品", "--run-id", run_id], project)
    to_done = command(["approve", run_id], project)
    calls = calls_per_step(project, run_id)
    shutil.rmtree(project, ignore_errors=True)
    return {"to_pause": to_pause, "to_done": to_done, "calls": calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency", type=float, default=3.0)
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--concurrency", default="8,16", help="model concurrency limits to compare")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with fake_server(args.latency) as url:
        caps = [int(c) for c in args.concurrency.split(",")]
        results: dict[int, list[dict[str, object]]] = {c: [] for c in caps}
        for i in range(args.runs):
            for cap in caps:
                results[cap].append(one_run(url, cap, args.limit, f"{cap}-{i}"))
        print(f"feedback_digest, first {args.limit} reviews, {args.latency:g} s per call, {args.runs} runs, "
              f"load average {os.getloadavg()[0]:.2f} at the end, {time.strftime('%Y-%m-%d %H:%M')}")
        print("| model concurrency | LLM calls (label, cluster_notes, themes / good_cases, replies) | "
              "to the pause (median) | ideal | from approve to done (median) | ideal |")
        print("|---|---|---|---|---|---|")
        for cap in caps:
            calls: dict[str, int] = results[cap][0]["calls"]  # type: ignore[assignment]
            before, after = ideal_waves(calls, cap)
            pause = statistics.median(float(r["to_pause"]) for r in results[cap])  # type: ignore[arg-type]
            done = statistics.median(float(r["to_done"]) for r in results[cap])  # type: ignore[arg-type]
            shown = ", ".join(str(calls.get(s, 0)) for s in ("label", "cluster_notes", "themes"))
            shown += " / " + ", ".join(str(calls.get(s, 0)) for s in ("good_cases", "replies"))
            print(f"| {cap} | {shown} | {pause:.1f} s | {before} waves = {before * args.latency:.1f} s | "
                  f"{done:.1f} s | {after} wave{'s' if after != 1 else ''} = {after * args.latency:.1f} s |")


if __name__ == "__main__":
    main()
