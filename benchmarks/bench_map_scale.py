"""A map at scale against a fixed model latency: wall time against the ideal, and peak memory.

    python benchmarks/bench_map_scale.py [--sizes 10000,100000] [--runs 3] [--latency 0.2]

One `llm` step maps N items with `batch: 20` and `concurrency: 16` (the model's limit is 16 too) against the
fake OpenAI-compatible server, which runs in its own process and answers after `--latency` seconds. Each run
is a fresh process that first runs the playbook on 40 items (imports and the HTTP client are a fixed cost
per process — `bench_feedback_latency.py` counts them where a user waits for them) and then on N items
through the engine (journal, events, hooks; cache off); the figure is that run's wall time from start to
done, and the process's peak RSS. The ideal is ⌈N / (batch · concurrency)⌉ · latency. The largest size
runs once (it takes minutes).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.fake_server_process import fake_server  # noqa: E402

BATCH, CONCURRENCY = 20, 16

PLAYBOOK = f"""
name: map_scale
inputs: {{n: {{type: integer}}}}
defaults: {{temperature: 0.7}}
steps:
  - id: label
    map: "${{{{ range(inputs.n) | list }}}}"
    batch: {BATCH}
    concurrency: {CONCURRENCY}
    llm: {{prompt: "评论 ${{{{ item }}}}", output: {{sentiment: {{enum: [正面, 中性, 负面]}}, topic: string}}}}
outputs: {{count: "${{{{ steps.label.output | length }}}}"}}
"""

CHILD = """
import asyncio, json, resource, sys, time
from pathlib import Path
from runner.config import load_project
from runner.dsl.validate import load_and_validate
from runner.engine.execute import Runner
folder, n = Path(sys.argv[1]), int(sys.argv[2])
runner = Runner(load_project(folder))
playbook = load_and_validate(folder / "map.yaml")
warm = asyncio.run(runner.start(playbook, {"n": 40}))  # imports and the HTTP client: once per process, not per map
assert warm.status == "done", warm.error
started = time.monotonic()
outcome = asyncio.run(runner.start(playbook, {"n": n}))
wall = time.monotonic() - started
assert outcome.status == "done" and outcome.outputs["count"] == n, outcome.error
print(json.dumps({"wall": wall, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""



def one_run(url: str, n: int) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="bench-map-"))
    (folder / "playbook.toml").write_text(
        f'[models.default]\nmodel = "openai/fake"\napi_base = "{url}"\nconcurrency = {CONCURRENCY}\n')
    (folder / "map.yaml").write_text(PLAYBOOK)
    done = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(n)], cwd=folder, capture_output=True,
                          text=True, env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}, timeout=3600)
    if done.returncode:
        raise SystemExit(done.stderr)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with fake_server(args.latency) as url:
        rows = []
        for n in sizes:
            runs = [one_run(url, n) for _ in range(args.runs if n < max(sizes) else 1)]
            wall = statistics.median(r["wall"] for r in runs)
            rss = max(r["rss_mb"] for r in runs)
            ideal = math.ceil(n / (BATCH * CONCURRENCY)) * args.latency
            rows.append((n, len(runs), wall, ideal, rss))
        print(f"map, batch {BATCH}, concurrency {CONCURRENCY}, {args.latency * 1000:.0f} ms per call, "
              f"load average {os.getloadavg()[0]:.2f} at the end, {time.strftime('%Y-%m-%d %H:%M')}")
        print("| items | runs | wall (median) | ideal | ratio | per 1,000 items | peak RSS |")
        print("|---|---|---|---|---|---|---|")
        for n, count, wall, ideal, rss in rows:
            print(f"| {n:,} | {count} | {wall:.1f} s | {ideal:.1f} s | {wall / ideal:.2f}× | "
                  f"{wall / n * 1000:.2f} s | {rss:.0f} MB |")


if __name__ == "__main__":
    main()
