"""Time the README's commands exactly as written, on the embedded model (no key, no network).

    python benchmarks/readme_commands.py [--threads N] [--long] [--only quick,full,retro,trend]

Copies the clone's playbooks/ and examples/ into a fresh temporary project with no playbook.toml (so `default`
is the embedded `local` model, as on a newcomer's machine), then runs, as subprocesses of the real `playbook`
command and in this order: the quick start (`feedback_digest`, limit=20) until it waits for approval, the
`approve` that finishes it, and trend_scan with the embedded-model command the README gives (the Weibo
snapshot served on loopback, as `python -m http.server` does there); with --long also the feedback_digest
command over all 2,000 reviews and retro, each to its approval and past it; --only picks some of them (the long
ones take many minutes each). Prints a markdown table of wall time,
exit code and the run's tokens; the README's figures are copied from it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.testing import serve_directory  # noqa: E402

QUICK_START = ["run", "playbooks/feedback_digest.yaml", "-i", "comments=examples/reviews_zh.csv", "-i", "limit=20"]
FULL_DIGEST = ["run", "playbooks/feedback_digest.yaml", "-i", "comments=examples/reviews_zh.csv", "-i",
               "product=我们的产品"]
RETRO = ["run", "playbooks/retro.yaml", "--inputs", "examples/retro/inputs.yaml"]
TREND_LOCAL = ["run", "playbooks/trend_scan.yaml", "-i", "hot_lists={base}/weibo/2026-08-17.json",
               "-i", "keywords=AI,手机,电商", "-i", "per_source=50"]


def playbook(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "runner", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=3600)
    return time.perf_counter() - started, done


def tokens(project: Path, run_id: str) -> int:
    with sqlite3.connect(project / ".playbook" / "state.db") as db:
        row = db.execute("SELECT tokens_in + tokens_out FROM runs WHERE id = ?", (run_id,)).fetchone()
    return int(row[0]) if row else 0


def to_approval_and_past_it(command: list[str], project: Path, env: dict[str, str]) -> None:
    """One README command until it waits for approval, then the `approve` that finishes it: a row each."""
    seconds, done = playbook(command, project, env)
    found = re.search(r"playbook approve (\S+)", done.stdout)
    run_id = found.group(1) if found else "?"
    print(f"| `playbook {' '.join(command)}` | {seconds:.0f} s | {done.returncode} | "
          f"{tokens(project, run_id):,} |", flush=True)
    if not found:
        print(json.dumps(done.stderr[-800:], ensure_ascii=False))
        return
    seconds, done = playbook(["approve", run_id], project, env)
    print(f"| `playbook approve <run id>` | {seconds:.0f} s | {done.returncode} | {tokens(project, run_id):,} |",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, help="[local] threads (default: every core)")
    parser.add_argument("--long", action="store_true",
                        help="also the 2,000-review command and retro, each to its approval and past it (minutes)")
    parser.add_argument("--only", help="comma-separated: quick, full, retro, trend (default: all that apply)")
    args = parser.parse_args()
    long_ones = {"full", "retro"} if args.long else set()
    chosen = set(args.only.split(",")) if args.only else {"quick", "trend"} | long_ones
    project = Path(tempfile.mkdtemp(prefix="readme-commands-"))
    shutil.copytree(ROOT / "playbooks", project / "playbooks")
    shutil.copytree(ROOT / "examples", project / "examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYBOOK_")}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    if args.threads:
        env["PLAYBOOK_LOCAL_THREADS"] = str(args.threads)
    print(f"{os.cpu_count()} cores; load average before: {os.getloadavg()[0]:.2f}")
    print("| command | wall | exit | tokens |")
    print("|---|---|---|---|")
    for name, command in (("quick", QUICK_START), ("full", FULL_DIGEST), ("retro", RETRO)):
        if name in chosen:
            to_approval_and_past_it(command, project, env)
    if "trend" not in chosen:
        shutil.rmtree(project, ignore_errors=True)
        return
    with serve_directory(project / "examples" / "trends") as base:
        # as the README says to: the stand-in server is on this machine, which tools reach only when allowed
        (project / "playbook.toml").write_text('[web]\nallow_private = ["127.0.0.1"]\n', encoding="utf-8")
        command = [part.replace("{base}", base) for part in TREND_LOCAL]
        seconds, done = playbook(command, project, env)
        shown = " ".join(TREND_LOCAL).replace("{base}", "http://127.0.0.1:8000")
        found = re.search(r"✓ 已完成\S* (\S+)", done.stdout)
        used = tokens(project, found.group(1)) if found else 0
        print(f"| `playbook {shown}` | {seconds:.0f} s | {done.returncode} | {used:,} |", flush=True)
        if done.returncode:
            print(json.dumps(done.stderr[-800:], ensure_ascii=False))
    shutil.rmtree(project, ignore_errors=True)


if __name__ == "__main__":
    main()
