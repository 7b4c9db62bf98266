"""The table reader (runner/tables) against the plain reading it replaced (csv.DictReader over the decoded file):
wall time and peak traced memory on a 200,000-row review export, as it is and under a title line, medians of 5.

    python benchmarks/bench_table_read.py [--rows N]
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runner.tables import Shape, read_table


def dict_reader(path: Path) -> list[dict[str, Any]]:
    text = path.read_bytes().decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if "导出" in (reader.fieldnames or [""])[0]:  # a title line: the plain reader cannot tell, skip it by hand
        reader = csv.DictReader(io.StringIO(text.split("\n", 1)[1], newline=""))
    return [dict(r) for r in reader]


def measure(read: Callable[[Path], list[dict[str, Any]]], path: Path, rounds: int) -> tuple[float, float, int]:
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        rows = read(path)
        seconds.append(time.perf_counter() - started)
    tracemalloc.start()
    rows = read(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return statistics.median(seconds), peak / 2**20, len(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    lines = [f'{4100000000 + i},"物流很快,包装完好,第{i}次购买",{i % 5},2026-11-01 10:00' for i in range(args.rows)]
    with tempfile.TemporaryDirectory() as folder:
        plain = Path(folder) / "plain.csv"
        plain.write_text("订单号,评论,评分,时间\n" + "\n".join(lines) + "\n", encoding="utf-8")
        titled = Path(folder) / "titled.csv"
        titled.write_text("商品评价导出,导出时间：2026-12-01\n" + plain.read_text(encoding="utf-8"), encoding="utf-8")
        print(f"| file ({args.rows:,} rows) | reader | median s | peak MB | rows |")
        print("|---|---|---|---|---|")
        for path in (plain, titled):
            figures = {}
            for name, read in (("csv.DictReader", dict_reader),
                               ("read_table", lambda p: read_table(p, p.name, Shape()).rows)):
                figures[name] = measure(read, path, args.rounds)
                seconds, peak, count = figures[name]
                print(f"| {path.name} | {name} | {seconds:.2f} | {peak:.0f} | {count:,} |")
            ratio = figures["read_table"][0] / figures["csv.DictReader"][0]
            print(f"| {path.name} | ratio read_table / DictReader | {ratio:.2f}× | "
                  f"{figures['read_table'][1] / figures['csv.DictReader'][1]:.2f}× | |")


if __name__ == "__main__":
    main()
