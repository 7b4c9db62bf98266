"""Many `playbook run playbooks/feedback_digest.yaml` started at the same moment in one project folder (the fake
model in a process of its own): how many finish, how long the batch takes, how many runs said a CPU-bound step
was waiting for a CPU turn (runner/cpu_slots.py) instead of timing out.

    python benchmarks/bench_concurrent_runs.py [--runs 20] [--limit 200] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.fake_server_process import fake_server

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, fake_server(args.latency) as url:
        project = Path(folder)
        (project / "playbook.toml").write_text(f'[models.default]\nmodel = "openai/fake"\napi_base = "{url}"\n',
                                               encoding="utf-8")
        command = [sys.executable, "-m", "runner", "run", str(ROOT / "playbooks" / "feedback_digest.yaml"),
                   "-i", f"comments={ROOT / 'examples' / 'reviews_zh.csv'}", "-i", "review=false",
                   "-i", f"limit={args.limit}"]
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "OPENAI_API_KEY": "sk-fake"}
        started = time.perf_counter()
        runs = [subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True) for _ in range(args.runs)]
        ends: list[float] = []
        results = []
        for run in runs:
            said, _ = run.communicate(timeout=3600)
            ends.append(time.perf_counter() - started)
            results.append((run.returncode, said))
        wall = time.perf_counter() - started
    done = sum(code == 0 for code, _ in results)
    waited = sum("在等 CPU" in said for _, said in results)
    print("| runs at once | finished | failed | said they waited for a CPU | wall s | median run s |")
    print("|---|---|---|---|---|---|")
    print(f"| {args.runs} | {done} | {args.runs - done} | {waited} | {wall:.1f} | {statistics.median(ends):.1f} |")
    for code, said in results:
        if code != 0:
            print(f"\nexit {code}:\n{said[-1500:]}")


if __name__ == "__main__":
    main()
