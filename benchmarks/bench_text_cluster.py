"""text.cluster time and peak memory at 2,000 / 20,000 / 100,000 texts, against the dense version it replaced.

    python benchmarks/bench_text_cluster.py [--sizes 2000 20000 100000] [--dense-ref a261b87]

Texts are the 2,000 real reviews of examples/reviews_zh.csv, repeated to reach the size (jieba words,
k = 30, 8 restarts, as the tool runs). Each measurement runs in a fresh process so its peak RSS
(`ru_maxrss`) is its own; the dense reference is `tools/text_cluster.py` at the given commit.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import csv, json, resource, sys, time
sys.path.insert(0, {root!r})
sys.path.insert(0, {module_dir!r})
import text_cluster_under_test as tc
from tools.text import tokens
rows = [r["text"] for r in csv.DictReader(open({reviews!r}, encoding="utf-8"))]
texts = [rows[i % len(rows)] for i in range({n})]
docs = [tokens(t) for t in texts]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
tc.cluster_texts(docs, 30, 3000)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": time.perf_counter() - start, "peak_mb": peak / 1024, "before_mb": base / 1024}}))
"""


def measure(source: str, n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "text_cluster_under_test.py").write_text(source, encoding="utf-8")
        code = CHILD.format(root=str(ROOT), module_dir=folder, reviews=str(ROOT / "examples" / "reviews_zh.csv"), n=n)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=3600)
        if done.returncode != 0:
            return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}  # type: ignore[dict-item]
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000, 100000])
    parser.add_argument("--dense-ref", default="a261b87")
    parser.add_argument("--dense-max", type=int, default=20000, help="largest size to try the dense version on")
    args = parser.parse_args()
    sparse = (ROOT / "tools" / "text_cluster.py").read_text(encoding="utf-8")
    dense = subprocess.run(["git", "show", f"{args.dense_ref}:tools/text_cluster.py"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout
    print("| texts | version | time | peak RSS (before clustering) |")
    print("|---|---|---|---|")
    for n in args.sizes:
        for name, source in (("sparse (now)", sparse), (f"dense ({args.dense_ref})", dense)):
            if name.startswith("dense") and n > args.dense_max:
                continue
            r = measure(source, n)
            if "error" in r:
                print(f"| {n:,} | {name} | failed: {r['error']} | |")
            else:
                print(f"| {n:,} | {name} | {r['seconds']:.1f} s | {r['peak_mb']:.0f} MB ({r['before_mb']:.0f} MB) |",
                      flush=True)


if __name__ == "__main__":
    main()
