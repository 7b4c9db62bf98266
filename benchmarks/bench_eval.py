"""`playbook eval` throughput: cases in parallel against a slow model, and replay against live.

A suite of 8 cases of a two-step playbook (two LLM calls per case) against the fake OpenAI-compatible server
with 300 ms latency per call, run live at concurrency 1, 2, 4 and 8, then replayed from the cassette it
recorded. Medians of 3 runs, one process, so ratios compare numbers taken seconds apart.

    python benchmarks/bench_eval.py
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner.config import load_project
from runner.evals.session import EvalOptions, evaluate_suite

PLAYBOOK = """\
name: two_calls
inputs:
  topic: {type: string}
steps:
  - id: outline
    llm: {prompt: "为 ${{ inputs.topic }} 列提纲", output: {points: [string]}}
  - id: draft
    llm: {prompt: "按提纲写推送：${{ steps.outline.points | join('；') }}", output: {title: string, body: string}}
outputs:
  title: ${{ steps.draft.title }}
"""
CASES = 8
LATENCY = 0.3
RUNS = 3


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    (folder / "two_calls.yaml").write_text(PLAYBOOK, encoding="utf-8")
    evals = folder / "evals"
    evals.mkdir()
    (evals / "replies.yaml").write_text(f"latency: {LATENCY}\nrules: []\n", encoding="utf-8")
    suite = {"playbook": "../two_calls.yaml", "fake_llm": {"script": "replies.yaml"},
             "cases": [{"id": f"c{i}", "inputs": {"topic": f"话题{i}"},
                        "assert": [{"that": "outputs.title", "length": {"min": 1}}]} for i in range(CASES)]}
    path = evals / "bench.yaml"
    path.write_text(yaml.safe_dump(suite, allow_unicode=True), encoding="utf-8")
    os.chdir(folder)
    project = load_project(folder)

    def timed(options: EvalOptions) -> float:
        times = []
        for _ in range(RUNS):
            started = time.perf_counter()
            result = evaluate_suite(path, options, project=project)
            times.append(time.perf_counter() - started)
            assert not result.failed, result.report["cases"]
        return statistics.median(times)

    evaluate_suite(path, EvalOptions(mode="record"), project=project)  # warm up and write the cassette
    rows = [(f"live, concurrency {c}", timed(EvalOptions(concurrency=c))) for c in (1, 2, 4, 8)]
    rows.append(("replay, concurrency 4", timed(EvalOptions(mode="replay", concurrency=4))))
    ideal = CASES * 2 * LATENCY
    print(f"{CASES} cases × 2 calls × {LATENCY * 1000:.0f} ms latency (serial model time {ideal:.1f} s), "
          f"median of {RUNS}\n")
    print("| run | median | speed-up vs concurrency 1 |\n|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} s | {rows[0][1] / seconds:.2f}× |")


if __name__ == "__main__":
    main()
