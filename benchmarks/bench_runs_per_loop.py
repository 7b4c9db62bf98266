"""CPU per small run when each run has an event loop of its own, as a team worker drives them (`asyncio.run` per
task): a one-step LLM playbook against the fake server in another process, 30 runs after a warm-up.

    python benchmarks/bench_runs_per_loop.py [--runs 30] [--rounds 3] [--ref COMMIT]

With `--ref`, the same measurement of that commit (a git worktree, this checkout's virtualenv) interleaved round by
round; prints the median CPU per run of each side and the per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.fake_server_process import fake_server  # noqa: E402

CHILD = """
import asyncio, json, os, sys, tempfile, time
from pathlib import Path
url, runs = sys.argv[1], int(sys.argv[2])
folder = Path(tempfile.mkdtemp(prefix="bench_runs_per_loop_"))
(folder / "playbook.toml").write_text(f'[models.default]\\nmodel = "openai/fake"\\napi_base = "{url}"\\n')
(folder / "pb.yaml").write_text('name: one\\ninputs: {n: {type: integer}}\\n'
                                'steps:\\n  - {id: a, llm: {prompt: "第 ${{ inputs.n }} 条"}}\\n')
os.chdir(folder)
from runner.assembly import assemble
from runner.config import load_project
from runner.dsl.validate import load_and_validate
runner = assemble(load_project(folder))
playbook = load_and_validate(folder / "pb.yaml")
assert asyncio.run(runner.start(playbook, {"n": -1})).status == "done"  # imports and first-run work
started = time.process_time()
for i in range(runs):
    outcome = asyncio.run(runner.start(playbook, {"n": i}))  # a loop of its own, as a worker's task
    assert outcome.status == "done", outcome.error
print(json.dumps({"cpu_per_run": (time.process_time() - started) / runs}))
"""


def measure(url: str, runs: int, root: Path) -> float:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", CHILD, url, str(runs)], capture_output=True, text=True, env=env,
                          check=True, cwd=root)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["cpu_per_run"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ref")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, fake_server(0.0) as url:
        sides = {"HEAD": ROOT}
        if args.ref:
            sides[args.ref] = Path(tmp) / "ref"
            subprocess.run(["git", "worktree", "add", "-f", "-q", str(sides[args.ref]), args.ref], cwd=ROOT, check=True)
        try:
            figures: dict[str, list[float]] = {side: [] for side in sides}
            for _ in range(args.rounds):
                for side, root in sides.items():
                    figures[side].append(measure(url, args.runs, root))
        finally:
            if args.ref:
                subprocess.run(["git", "worktree", "remove", "--force", str(sides[args.ref])], cwd=ROOT, check=False)
    print(f"{args.runs} runs a round, {args.rounds} rounds, load average {os.getloadavg()[0]:.2f} at the end")
    print("| code | CPU per run (median) | per-round figures |\n|---|---|---|")
    for side, values in figures.items():
        print(f"| {side} | {statistics.median(values) * 1000:.1f} ms | "
              f"{', '.join(f'{v * 1000:.1f}' for v in values)} ms |")
    if args.ref:
        ratios = sorted(h / r for h, r in zip(figures["HEAD"], figures[args.ref], strict=True))
        print(f"HEAD / {args.ref}: {statistics.median(ratios):.2f}× (per round {ratios[0]:.2f}–{ratios[-1]:.2f})")


if __name__ == "__main__":
    main()
