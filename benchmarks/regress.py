"""HEAD against a named commit on this machine: the same commands, interleaved, CPU of each process.

    python benchmarks/regress.py COMMIT [--rounds 5] [--only help,validate,run,eval_replay]

The commit is checked out in a temporary git worktree and run with this checkout's virtualenv (PYTHONPATH set to
the worktree), so only the code differs. Each round runs every measurement once on each side, alternating which
side goes first, so drift in the machine's load falls on both alike. Prints, per measurement, the median CPU
seconds (user + system of the child process) on each side, their ratio HEAD / commit, and the range of the
per-round ratios. Write a figure in benchmarks/README.md only from a run of this script (or of the benchmark it
names), with the load it prints.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRIVIAL = "name: trivial\nsteps:\n  - {id: t, template: hi}\n"
# name → the command's arguments after `python -m runner`, run in a scratch project folder
MEASUREMENTS: dict[str, list[str]] = {
    "help": ["--help"],
    "validate": ["validate", "{root}/playbooks/feedback_digest.yaml"],
    "run": ["run", "trivial.yaml"],
    "eval_replay": ["eval", "{root}/evals/", "--replay"],
}


def child_cpu(args: list[str], cwd: Path, pythonpath: Path) -> float:
    """CPU seconds of one child process running `python -m runner …`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run([sys.executable, "-m", "runner", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode not in (0, 3):  # 3: an eval case left waiting is still a finished command
        raise SystemExit(f"{' '.join(args)} failed in {pythonpath}:\n{done.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("commit")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default=",".join(MEASUREMENTS))
    args = parser.parse_args()
    names = args.only.split(",")
    scratch = Path(tempfile.mkdtemp(prefix="regress_"))
    worktree = scratch / "base"
    subprocess.run(["git", "worktree", "add", "-f", "-q", "--detach", str(worktree), args.commit], cwd=ROOT,
                   check=True)
    try:
        sides = {"HEAD": ROOT, args.commit: worktree}
        folders = {side: scratch / f"project_{i}" for i, side in enumerate(sides)}
        for folder in folders.values():
            folder.mkdir()
            (folder / "trivial.yaml").write_text(TRIVIAL, encoding="utf-8")
        figures: dict[str, dict[str, list[float]]] = {n: {side: [] for side in sides} for n in names}
        for round_number in range(args.rounds):
            order = list(sides) if round_number % 2 == 0 else list(reversed(sides))
            for name in names:
                for side in order:
                    command = [a.format(root=sides[side]) for a in MEASUREMENTS[name]]
                    figures[name][side].append(child_cpu(command, folders[side], sides[side]))
        load = os.getloadavg()[0]
        print(f"HEAD vs {args.commit}: {args.rounds} rounds, interleaved; load average {load:.2f} at the end")
        print(f"| command | HEAD CPU (median) | {args.commit} CPU (median) | ratio | per-round ratios |")
        print("|---|---|---|---|---|")
        for name in names:
            head, base = figures[name]["HEAD"], figures[name][args.commit]
            ratios = [h / b for h, b in zip(head, base, strict=True) if b > 0]
            print(f"| {name} | {statistics.median(head):.2f} s | {statistics.median(base):.2f} s | "
                  f"{statistics.median(head) / statistics.median(base):.2f}× | "
                  f"{min(ratios):.2f}–{max(ratios):.2f} |")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
