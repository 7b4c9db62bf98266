"""text.cluster and text.dedupe: time, peak memory and cluster purity, the library-backed code against the
hand-written code it replaced.

    python benchmarks/bench_text_cluster.py [--sizes 2000 20000 100000] [--ref 9d4b291]

Cluster texts are the 2,000 real reviews of examples/reviews_zh.csv repeated to reach the size (jieba words,
k = 30, 8 restarts, as the tool runs; tokenising is not timed). Dedupe texts are the same reviews, each copy
after the first with one to three characters changed at random (seeded), so most are near-duplicates the
MinHash index must find. Purity: 180 reviews that name exactly one of hotel / book / laptop, k = 3, the share
in their cluster's majority topic (the test in tests/test_tools_text.py asks ≥ 0.8). Each measurement runs in
a fresh process so its peak RSS (`ru_maxrss`) is its own. "before" is `tools/text_cluster.py` and
`tools/text.py` at the given commit (hand-written TF-IDF, spherical k-means, MinHash in numpy).
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
import asyncio, csv, importlib.util, json, random, resource, sys, time
sys.path.insert(0, {root!r})
def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
from tools.text import tokens
reviews = [r["text"] for r in csv.DictReader(open({reviews!r}, encoding="utf-8"))]
task, n = {task!r}, {n}
if task == "dedupe":
    text = load("text_under_test", {text_module!r})
    rng = random.Random(1)
    def vary(s):
        chars = list(s)
        for _ in range(rng.randint(1, 3)):
            chars[rng.randrange(len(chars))] = rng.choice("的了是我不好很")
        return "".join(chars)
    rows = [{{"text": reviews[i % len(reviews)] if i < len(reviews) else vary(reviews[i % len(reviews)])}}
            for i in range(n)]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    out = asyncio.run(text.text_dedupe(text.DedupeInput(rows=rows), None))
    result = {{"kept": out.count, "near": out.near_removed}}
else:
    cluster = load("cluster_under_test", {cluster_module!r})
    if task == "purity":
        from collections import Counter
        topics = {{"hotel": "酒店", "book": "这本书", "laptop": "笔记本"}}
        picked = []
        for name, word in topics.items():
            others = [w for w in topics.values() if w != word]
            picked += [(t, name) for t in reviews if word in t and not any(o in t for o in others)][:60]
        docs = [tokens(t) for t, _ in picked]
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        labels, _ = cluster.cluster_texts(docs, 3, 3000)
        groups = {{}}
        for label, (_, topic) in zip(labels, picked):
            groups.setdefault(label, []).append(topic)
        result = {{"purity": sum(Counter(g).most_common(1)[0][1] for g in groups.values()) / len(picked)}}
    else:
        docs = [tokens(reviews[i % len(reviews)]) for i in range(n)]
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        labels, _ = cluster.cluster_texts(docs, 30, 3000)
        result = {{"clusters": len(set(labels))}}
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": seconds, "peak_mb": peak / 1024, "before_mb": base / 1024, **result}}))
"""


def measure(task: str, n: int, cluster_source: str, text_source: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        cluster_module, text_module = Path(folder, "cluster_under_test.py"), Path(folder, "text_under_test.py")
        cluster_module.write_text(cluster_source, encoding="utf-8")
        text_module.write_text(text_source, encoding="utf-8")
        code = CHILD.format(root=str(ROOT), reviews=str(ROOT / "examples" / "reviews_zh.csv"), task=task, n=n,
                            cluster_module=str(cluster_module), text_module=str(text_module))
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=3600)
        if done.returncode != 0:
            return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}  # type: ignore[dict-item]
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def source(ref: str | None, path: str) -> str:
    if ref is None:
        return (ROOT / path).read_text(encoding="utf-8")
    return subprocess.run(["git", "show", f"{ref}:{path}"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000, 100000])
    parser.add_argument("--ref", default="9d4b291", help="commit of the hand-written version")
    args = parser.parse_args()
    versions = {"library (now)": (source(None, "tools/text_cluster.py"), source(None, "tools/text.py")),
                f"hand-written ({args.ref})": (source(args.ref, "tools/text_cluster.py"),
                                               source(args.ref, "tools/text.py"))}
    print("| task | texts | version | time | peak RSS (before) | result |")
    print("|---|---|---|---|---|---|")
    jobs = [("purity", 180)] + [(task, n) for task in ("cluster", "dedupe") for n in args.sizes]
    for task, n in jobs:
        for name, (cluster_source, text_source) in versions.items():
            r = measure(task, n, cluster_source, text_source)
            if "error" in r:
                print(f"| {task} | {n:,} | {name} | failed: {r['error']} | | |", flush=True)
                continue
            extra = ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v:,}" for k, v in r.items()
                              if k not in ("seconds", "peak_mb", "before_mb"))
            print(f"| {task} | {n:,} | {name} | {r['seconds']:.1f} s | {r['peak_mb']:.0f} MB ({r['before_mb']:.0f} MB)"
                  f" | {extra} |", flush=True)


if __name__ == "__main__":
    main()
