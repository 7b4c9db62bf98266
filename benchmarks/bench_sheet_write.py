"""sheet.write of a large sheet: wall time and peak memory, in a fresh process per size.

    python benchmarks/bench_sheet_write.py [--rows 200000]

Each process builds N comment-like rows (id, a 60-character text, labels), then writes them to an xlsx
through the real tool (ledger + streaming rebuild) and prints seconds and the peak RSS."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile

CHILD = """
import asyncio, resource, sys, time
from pathlib import Path
from runner.testing import call_tool
n, folder = int(sys.argv[1]), Path(sys.argv[2])
rows = [{"id": i, "text": f"第 {i} 条评论：物流太慢了，客服也不回消息，包装还破了，希望改进" , "sentiment": "负面",
         "topic": "物流", "good_case": False} for i in range(n)]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.monotonic()
asyncio.run(call_tool("sheet.write", {"path": "big.xlsx", "sheet": "标注", "rows": rows}, run_dir=folder))
first = time.monotonic() - started
started = time.monotonic()
asyncio.run(call_tool("sheet.write", {"path": "big.xlsx", "sheet": "回复草稿", "rows": rows[:1000]}, run_dir=folder))
second = time.monotonic() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{n} rows: first sheet {first:.1f} s, a second sheet added {second:.1f} s, peak RSS {peak / 1024:.0f} MB "
      f"(rows in memory: {before / 1024:.0f} MB), file {(folder / 'big.xlsx').stat().st_size / 1e6:.1f} MB")
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="*", default=[20000, 200000])
    for n in parser.parse_args().rows:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-c", CHILD, str(n), tmp], check=True)


if __name__ == "__main__":
    main()
