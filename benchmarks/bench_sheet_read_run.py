"""Peak memory (RSS) and wall time of a whole `playbook run` whose first step reads a 200,000-row review export
(csv and xlsx) and whose four later steps read its count — the process a user starts, not the reader alone. With
`--compare REF`, the same runs of the code at git REF, interleaved with this checkout's, one round at a time.

    python benchmarks/bench_sheet_read_run.py [--rows N] [--rounds 3] [--compare e40ef14]
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

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOK = """
name: read
inputs: {file: {type: file}}
steps:
  - {id: load, tool: sheet.read, with: {path: "${{ inputs.file }}"}}
""" + "".join(f'  - {{id: s{i}, tool: file.write, with: {{path: "s{i}.txt", '
              f'content: "${{{{ steps.load.count }}}}"}}}}\n' for i in range(4)) + """outputs:
  n: "${{ steps.load.output.rows | length }}"
"""


def make_files(folder: Path, rows: int) -> list[Path]:
    import openpyxl

    lines = [(str(4100000000 + i), f"物流很快,包装完好,第{i}次购买", str(i % 5), "2026-11-01 10:00")
             for i in range(rows)]
    csv_path = folder / "reviews.csv"
    with csv_path.open("w", encoding="utf-8") as handle:
        handle.write("订单号,评论,评分,时间\n")
        handle.writelines(f'{a},"{b}",{c},{d}\n' for a, b, c, d in lines)
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("评价")
    sheet.append(["订单号", "评论", "评分", "时间"])
    for row in lines:
        sheet.append(list(row))
    xlsx_path = folder / "reviews.xlsx"
    book.save(xlsx_path)
    return [csv_path, xlsx_path]


def one_run(code: Path, project: Path, data: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one `playbook run` in a fresh project state."""
    subprocess.run(["rm", "-rf", str(project / ".playbook")], check=True)
    env = {**os.environ, "PYTHONPATH": str(code), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "runner", "run", "read.yaml", "-i", f"file={data}"],
                             cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    said = child.stdout.read().decode() if child.stdout else ""
    if status != 0:
        raise SystemExit(f"the run failed ({status}):\n{said[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare", help="a git ref to measure beside this checkout")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        project = base / "project"
        project.mkdir()
        (project / "playbook.toml").write_text("", encoding="utf-8")
        (project / "read.yaml").write_text(PLAYBOOK, encoding="utf-8")
        files = make_files(base, args.rows)
        codes = {"this checkout": ROOT}
        if args.compare:
            old = base / "old"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), args.compare],
                           check=True, capture_output=True)
            codes[args.compare] = old
        try:
            figures: dict[tuple[str, str], list[tuple[float, float]]] = {}
            for _ in range(args.rounds):
                for data in files:
                    for label, code in codes.items():
                        figures.setdefault((data.name, label), []).append(one_run(code, project, data))
        finally:
            if args.compare:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base / "old")],
                               check=False, capture_output=True)
    print(f"| file ({args.rows:,} rows) | code | median s | median peak RSS MB |")
    print("|---|---|---|---|")
    for (name, label), runs in figures.items():
        print(f"| {name} | {label} | {statistics.median(s for s, _ in runs):.1f} | "
              f"{statistics.median(m for _, m in runs):.0f} |")


if __name__ == "__main__":
    main()
