"""text.* on the real reviews: duplicates, keywords, clusters."""

from __future__ import annotations

import asyncio
import csv
from collections import Counter
from pathlib import Path
from typing import Any

from runner.testing import call_tool
from tests.conftest import ROOT

REVIEWS = list(csv.DictReader((ROOT / "examples" / "reviews_zh.csv").open(encoding="utf-8")))


def call(name: str, tmp_path: Path, **args: Any) -> Any:
    return asyncio.run(call_tool(name, args, run_dir=tmp_path))


def test_exact_and_near_duplicates_are_removed_and_counted(tmp_path: Path) -> None:
    base = REVIEWS[1]["text"]  # a long real review
    rows = [{"id": "a", "text": base}, {"id": "b", "text": base.replace("，", ",") + "！！"},
            {"id": "c", "text": base[:-3] + "真不错"}, {"id": "d", "text": REVIEWS[2]["text"]},
            {"id": "e", "text": "好"}, {"id": "f", "text": "好！"}]
    out = call("text.dedupe", tmp_path, rows=rows)
    assert [r["id"] for r in out.rows] == ["a", "d", "e"]
    assert [r["dup_count"] for r in out.rows] == [3, 1, 2]
    assert (out.exact_removed, out.near_removed) == (2, 1)
    # every row left out is listed beside the row kept for it
    folded = [(f.id, f.kept_id, f.how) for f in out.folded]
    assert folded == [("b", "a", "完全重复"), ("c", "a", "近似重复"), ("f", "e", "完全重复")]
    near = out.folded[1]
    assert near.text == base[:-3] + "真不错" and near.kept_text == base and 0.8 <= near.similarity < 1


def test_plain_strings_are_numbered_in_the_folded_list(tmp_path: Path) -> None:
    out = call("text.dedupe", tmp_path, rows=["物流很快", "物流很快！", "包装破了"])
    assert [(f.id, f.kept_id, f.similarity) for f in out.folded] == [("2", "1", 1.0)]


def test_real_reviews_keep_distinct_texts(tmp_path: Path) -> None:
    out = call("text.dedupe", tmp_path, rows=REVIEWS)
    assert 1900 < out.count <= 2000 and sum(r["dup_count"] for r in out.rows) == 2000


def test_keywords_name_the_main_subjects(tmp_path: Path) -> None:
    words = [k.word for k in call("text.keywords", tmp_path, rows=REVIEWS, top_k=10).keywords]
    assert {"酒店", "房间"} <= set(words) and not {"没有", "可以"} & set(words)


def test_clusters_separate_hotels_books_and_laptops(tmp_path: Path) -> None:
    topics = {"hotel": "酒店", "book": "这本书", "laptop": "笔记本"}
    picked = []
    for name, word in topics.items():
        others = [w for w in topics.values() if w != word]
        matches = [r for r in REVIEWS if word in r["text"] and not any(o in r["text"] for o in others)]
        picked += [{**r, "topic": name} for r in matches[:60]]
    out = call("text.cluster", tmp_path, rows=picked, k=3)
    assert out.count == 3 and sum(c.size for c in out.clusters) == len(picked)
    purity = sum(Counter(picked[i]["topic"] for i in c.members).most_common(1)[0][1] for c in out.clusters)
    print(f"purity {purity / len(picked):.2f}")
    assert purity / len(picked) >= 0.8
    assert all(len(c.examples) == 3 and c.keywords for c in out.clusters)
    assert {r["cluster"] for r in out.rows} == {0, 1, 2}


def test_clustering_leaves_the_event_loop_free(tmp_path: Path) -> None:
    """text.cluster (and dedupe, keywords) run in a worker thread: a run's other work — the first LLM requests
    of a parallel branch, progress, Ctrl-C — goes on while they compute."""
    rows = [{"text": REVIEWS[i % len(REVIEWS)]["text"]} for i in range(6000)]

    async def both() -> tuple[int, Any]:
        ticks = 0
        task = asyncio.ensure_future(call_tool("text.cluster", {"rows": rows}, run_dir=tmp_path))
        while not task.done():
            await asyncio.sleep(0.01)
            ticks += 1
        return ticks, task.result()

    ticks, out = asyncio.run(both())
    assert out.count > 1 and ticks > 10  # on the loop, the ticker would not have run until the tool returned
