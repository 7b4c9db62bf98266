"""Knowledge-base retrieval on a real Chinese FAQ corpus (examples/kb/faq: the ant-design and vant FAQ pages,
MIT) with 59 questions written apart from it (examples/kb/questions.yaml): recall@3 and MRR of BM25, of the fake
server's embedding (hashed characters and character pairs, over HTTP on loopback) and of both fused by reciprocal
rank, and how long indexing 10,000 passages and answering 1,000 queries take.

    python benchmarks/kb_retrieval.py          # quality and speed
    python benchmarks/kb_retrieval.py --big    # peak memory of `playbook kb add` on one 100 MB document
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.config import ModelConfig  # noqa: E402
from runner.kb import dense  # noqa: E402
from runner.kb.index import Passage, build, load, words  # noqa: E402
from runner.testing import FakeLLMServer  # noqa: E402

CORPUS = ROOT / "examples" / "kb"


def quality(root: Path, embed_with: ModelConfig | None = None) -> dict[str, tuple[float, float, list[str]]]:
    """recall@3, MRR@10 and the questions missed in the top 3: of BM25 alone and, given an embedding model, of the
    vectors alone and of both fused by reciprocal rank."""
    build(root, "faq", CORPUS / "faq", embed_with=embed_with)
    index = load(root, "faq")
    questions = yaml.safe_load((CORPUS / "questions.yaml").read_text(encoding="utf-8"))
    rankings: dict[str, list[list[Passage]]] = {"BM25": [index.search(q["q"], k=10) for q in questions]}
    if embed_with is not None:
        async def vectors() -> list[Any]:
            return [await dense.query_vector(embed_with, q["q"]) for q in questions]

        asked = asyncio.run(vectors())
        rankings["vectors alone"] = [[Passage(index.passages[i]["text"], "", index.passages[i].get("heading") or "",
                                              None, 0.0) for i in dense.ranked(index.vectors @ v, 10)]
                                     for v in asked]
        rankings["hybrid (RRF)"] = [index.search(q["q"], k=10, query_vector=v)
                                    for q, v in zip(questions, asked, strict=True)]
    scored = {}
    for name, found_per_question in rankings.items():
        hits, reciprocal, missed = 0, 0.0, []
        for item, found in zip(questions, found_per_question, strict=True):
            rank = next((i for i, p in enumerate(found, 1) if item["expect"] in p.heading), None)
            hits += rank is not None and rank <= 3
            reciprocal += 1 / rank if rank else 0.0
            if rank is None or rank > 3:
                missed.append(f"{item['q']} → {[p.heading for p in found[:3]]}")
        scored[name] = (hits / len(questions), reciprocal / len(questions), missed)
    return scored


def speed(root: Path) -> tuple[float, float, float]:
    """Seconds to index 10,000 passages (from scratch), to re-index them unchanged, and per 1,000 queries."""
    folder = root / "docs"
    folder.mkdir(parents=True)
    sample = (CORPUS / "faq" / "antd-faq.zh-CN.md").read_text(encoding="utf-8").split("\n## ")[1:]
    for n in range(100):  # 100 files × 100 sections: 10,000 passages of real FAQ text
        sections = [f"## 问题 {n}-{i}：{sample[i % len(sample)].splitlines()[0]}\n\n"
                    + "\n".join(sample[i % len(sample)].splitlines()[1:])[:400] for i in range(100)]
        (folder / f"doc{n:03}.md").write_text("\n\n".join(sections), encoding="utf-8")
    words("预热")  # jieba's dictionary loads once per process; not what is measured
    started = time.perf_counter()
    report = build(root, "big", folder)
    fresh = time.perf_counter() - started
    assert report.chunks >= 10_000, report.chunks
    started = time.perf_counter()
    build(root, "big", folder)
    again = time.perf_counter() - started
    index = load(root, "big")
    queries = [q["q"] for q in yaml.safe_load((CORPUS / "questions.yaml").read_text(encoding="utf-8"))]
    started = time.perf_counter()
    for i in range(1000):
        index.search(queries[i % len(queries)], k=3)
    return fresh, again, time.perf_counter() - started


MAP = """
name: per_comment
inputs:
  comments: {type: list}
steps:
  - id: each
    map: ${{ inputs.comments }}
    as: comment
    concurrency: 50
    %s
outputs:
  n: ${{ steps.each.output | length }}
"""


def map_cost(root: Path, embed_with: ModelConfig | None = None) -> tuple[float, float]:
    """Seconds of a run whose map looks up 1,000 comments in the FAQ knowledge base, and of the same run whose map
    only copies each comment (the map's own cost): their difference is what kb.search adds. With `embed_with`,
    the knowledge base has vectors and each comment is embedded (1,000 calls to the server)."""
    import asyncio
    import os

    from runner.assembly import assemble
    from runner.config import load_project
    from runner.dsl.validate import load_and_validate

    project = root.parent / "project"
    project.mkdir(parents=True, exist_ok=True)
    (project / "playbook.toml").write_text(
        f'[models.embed]\nmodel = "{embed_with.model}"\napi_base = "{embed_with.api_base}"\n' if embed_with else "",
        encoding="utf-8")
    os.chdir(project)
    build(project / ".playbook" / "kb", "faq", CORPUS / "faq", embed_with=embed_with)
    questions = [q["q"] for q in yaml.safe_load((CORPUS / "questions.yaml").read_text(encoding="utf-8"))]
    comments = [questions[i % len(questions)] + f"（{i}）" for i in range(1000)]
    seconds = []
    for body in ('tool: kb.search\n    with: {kb: faq, query: "${{ comment }}", k: 3}', "template: ${{ comment }}"):
        path = project / "pb.yaml"
        path.write_text(MAP % body, encoding="utf-8")
        runner = assemble(load_project())
        started = time.perf_counter()
        outcome = asyncio.run(runner.start(load_and_validate(path), {"comments": comments}))
        seconds.append(time.perf_counter() - started)
        runner.close()
        assert outcome.status == "done" and outcome.outputs["n"] == 1000, outcome.error
    return seconds[0], seconds[1]


def big_file_memory(tmp: Path, megabytes: int = 100) -> tuple[float, float]:
    """Peak resident memory (MB) and seconds of `playbook kb add` (a subprocess) on one markdown file of `megabytes`
    MB: sections of the FAQ's paragraphs, shuffled."""
    import random
    import resource
    import subprocess

    paragraphs = [p for p in (CORPUS / "faq" / "antd-faq.zh-CN.md").read_text(encoding="utf-8").split("\n\n")
                  if p.strip()]
    chooser = random.Random(1)
    (tmp / "docs").mkdir()
    (tmp / "project").mkdir()
    (tmp / "project" / "playbook.toml").write_text("", encoding="utf-8")
    with (tmp / "docs" / "big.md").open("w", encoding="utf-8") as out:
        written, section = 0, 0
        while written < megabytes * 1_000_000:
            section += 1
            block = f"## 第 {section} 节\n\n" + "\n\n".join(chooser.choice(paragraphs) for _ in range(6)) + "\n\n"
            written += out.write(block) and len(block.encode())
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "runner", "kb", "add", "big", str(tmp / "docs")], cwd=tmp / "project",
                   check=True, capture_output=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, time.perf_counter() - started


def main() -> None:
    if sys.argv[1:] == ["--big"]:
        with tempfile.TemporaryDirectory() as tmp:
            peak, seconds = big_file_memory(Path(tmp))
            print(f"kb add of one 100 MB markdown file: peak {peak:.0f} MB resident, {seconds:.0f} s")
        return
    with tempfile.TemporaryDirectory() as tmp, FakeLLMServer() as server:
        n = len(yaml.safe_load((CORPUS / "questions.yaml").read_text(encoding="utf-8")))
        fake = ModelConfig(model="openai/fake-embed", api_base=server.url, api_key_env="FAKE_LLM_API_KEY")
        # the fake server's embedding: hashed characters and character pairs (runner.testing.fake_llm.text_vector)
        for name, (recall, mrr, missed) in quality(Path(tmp) / "kb", fake).items():
            print(f"{name}: recall@3 {recall:.3f}, MRR {mrr:.3f} on {n} questions")
            for line in missed:
                print("  missed:", line)
        runs = [speed(Path(tmp) / f"speed{i}") for i in range(3)]
        print(f"10,000 passages: indexed in {statistics.median(r[0] for r in runs):.2f} s (median of 3), "
              f"re-indexed unchanged in {statistics.median(r[1] for r in runs):.2f} s; 1,000 queries in "
              f"{statistics.median(r[2] for r in runs):.2f} s")
        for how, embed_with in (("BM25", None), ("hybrid, each comment embedded by the fake server", fake)):
            costs = [map_cost(Path(tmp) / f"map{how[:4]}{i}" / "kb", embed_with) for i in range(3)]
            searched = statistics.median(c[0] for c in costs)
            copied = statistics.median(c[1] for c in costs)
            print(f"a run mapping 1,000 comments ({how}): {searched:.2f} s with kb.search, {copied:.2f} s copying "
                  f"them (median of 3): kb.search adds {searched - copied:.2f} s")


if __name__ == "__main__":
    main()
