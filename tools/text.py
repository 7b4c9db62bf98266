"""text.*: cheap local pre-processing before the LLM — exact and near-duplicate removal, Chinese
keyword extraction (jieba), and clustering of short texts — so a playbook sends 30 cluster
summaries to the model instead of 3,000 comments."""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from runner.i18n import _
from runner.registry import ToolContext, tool

_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    """Width-folded, lower-cased, without spaces and punctuation: '好评！！' and '好评' are one text."""
    return _NOISE.sub("", unicodedata.normalize("NFKC", text).lower())


def _texts(rows: list[Any], field: str) -> list[str]:
    out = []
    for i, row in enumerate(rows):
        value = row.get(field) if isinstance(row, dict) else row
        if value is None and isinstance(row, dict):
            raise ValueError(_("row {i} has no field '{field}' (fields: {joined})").format(
                                 i=i, field=field, joined=', '.join(map(str, row))))
        out.append(str(value))
    return out


def bigrams(text: str) -> set[str]:
    return {text[i:i + 2] for i in range(max(1, len(text) - 1))}


_PERMUTATIONS = 64
_BANDS = (16, 4)  # 16 bands of 4 rows: pairs above ~0.5 Jaccard become candidates, then are checked exactly


class NearDuplicates:
    """MinHash LSH (datasketch) over character bigrams; a candidate counts only once its exact Jaccard
    similarity is checked, and the earliest matching text leads its group."""

    def __init__(self, similarity: float) -> None:
        from datasketch import MinHash, MinHashLSH

        self.similarity = similarity
        self.index = MinHashLSH(num_perm=_PERMUTATIONS, params=_BANDS)
        self.grams: dict[int, set[str]] = {}
        # fixed seed: the same text always gets the same signature; drawn once, not per text (half the time)
        self.template = MinHash(num_perm=_PERMUTATIONS, seed=20261123)

    def leader_or_add(self, i: int, grams: set[str]) -> tuple[int, float] | None:
        """The earliest text this one nearly repeats and their similarity, or None (then it leads its own group)."""
        from datasketch import MinHash

        signature = MinHash(num_perm=_PERMUTATIONS, permutations=self.template.permutations,
                            scheme=self.template.scheme)
        signature.update_batch([g.encode() for g in grams])
        for other in sorted(self.index.query(signature)):
            shared = self.grams[other]
            similarity = len(grams & shared) / len(grams | shared)
            if similarity >= self.similarity:
                return int(other), similarity
        self.index.insert(i, signature)
        self.grams[i] = grams
        return None


class DedupeInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rows: list[Any] = Field(description="rows (objects) or plain strings")
    field: str = Field("text", description="the text field of each row")
    near: bool = Field(True, description="also drop near-duplicates (MinHash over character bigrams)")
    similarity: float = Field(0.8, gt=0, le=1, description="near-duplicate: Jaccard similarity of the "
                                                            "texts' character bigrams, at least")
    min_length: int = Field(8, ge=1, description="texts shorter than this are only deduped exactly")


class Folded(BaseModel):
    id: str = Field(description="the folded row's id (its `id` field, else its number from 1)")
    text: str
    kept_id: str = Field(description="the id of the row kept in its place")
    kept_text: str
    similarity: float = Field(description="1 for the same text (ignoring spaces, punctuation and case), else the "
                                          "Jaccard similarity of the two texts' character bigrams")
    how: Literal["完全重复", "近似重复"]


class DedupeOutput(BaseModel):
    rows: list[Any] = Field(description="the first row of each group, with dup_count")
    count: int
    removed: int
    exact_removed: int
    near_removed: int
    folded: list[Folded] = Field(default_factory=list, description="every row left out, and the row kept for it")


@tool("text.dedupe", cpu_bound=True)
async def text_dedupe(args: DedupeInput, ctx: ToolContext) -> DedupeOutput:
    """Remove exact and near-duplicate texts; each kept row says how many it stands for."""
    return await asyncio.to_thread(dedupe, args)  # seconds of CPU on big inputs: off the event loop


def dedupe(args: DedupeInput) -> DedupeOutput:
    texts = _texts(args.rows, args.field)
    keep: list[int] = []
    group_of: dict[str, tuple[int, float]] = {}  # a normalised text → the row kept for it, and their similarity
    counts: Counter[int] = Counter()
    near_index = NearDuplicates(args.similarity) if args.near else None
    folded: list[tuple[int, int, float]] = []  # (row, kept row, similarity)
    keys = [normalise(text) for text in texts]
    for i, key in enumerate(keys):
        found = group_of.get(key)
        if found is None and near_index is not None and len(key) >= args.min_length:
            found = near_index.leader_or_add(i, bigrams(key))
            if found is not None:
                group_of[key] = found
        if found is not None:
            leader, similarity = found
            counts[leader] += 1
            folded.append((i, leader, similarity))
            continue
        group_of[key] = (i, 1.0)
        keep.append(i)
        counts[i] += 1
    rows = [({**args.rows[i], "dup_count": counts[i]} if isinstance(args.rows[i], dict) else args.rows[i])
            for i in keep]
    out = [Folded(id=_row_id(args.rows, i), text=texts[i], kept_id=_row_id(args.rows, leader),
                  kept_text=texts[leader], similarity=1.0 if keys[i] == keys[leader] else round(similarity, 3),
                  how="完全重复" if keys[i] == keys[leader] else "近似重复")  # judged against the row kept
           for i, leader, similarity in folded]
    near = sum(f.how == "近似重复" for f in out)
    return DedupeOutput(rows=rows, count=len(rows), removed=len(out), exact_removed=len(out) - near,
                        near_removed=near, folded=out)


def _row_id(rows: list[Any], i: int) -> str:
    row = rows[i]
    return str(row["id"]) if isinstance(row, dict) and row.get("id") not in (None, "") else str(i + 1)


_STOP = {
    "一个", "没有", "我们", "你们", "他们", "自己", "这个", "那个", "还是", "但是", "因为",
    "所以", "如果", "不过", "非常", "真的", "感觉", "觉得", "还有", "可以", "就是", "已经",
    "什么", "怎么", "这样", "那样", "一样", "一些", "比较", "知道", "不是", "而且", "然后",
    "其实", "时候", "东西", "一下", "一次", "有点", "这么", "那么",
}


def _jieba() -> Any:
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)  # its dictionary-loading chatter is not the user's business
    return jieba


def tokens(text: str) -> list[str]:
    jieba = _jieba()
    return [w for w in jieba.lcut(text) if len(w) > 1 and w not in _STOP and not _NOISE.fullmatch(w)]


class KeywordsInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rows: list[Any]
    field: str = "text"
    top_k: int = Field(20, ge=1, le=500)


class Keyword(BaseModel):
    word: str
    weight: float
    docs: int


class KeywordsOutput(BaseModel):
    keywords: list[Keyword]


@tool("text.keywords", cpu_bound=True)
async def text_keywords(args: KeywordsInput, ctx: ToolContext) -> KeywordsOutput:
    """Chinese keywords over all texts (jieba TF-IDF), with how many texts mention each."""
    return await asyncio.to_thread(find_keywords, args)


def find_keywords(args: KeywordsInput) -> KeywordsOutput:
    _jieba()
    import jieba.analyse

    texts = _texts(args.rows, args.field)
    ranked = jieba.analyse.extract_tags("\n".join(texts), topK=args.top_k * 2, withWeight=True)
    keywords = []
    for word, weight in ranked:
        if word in _STOP or len(word) < 2:
            continue
        keywords.append(Keyword(word=word, weight=round(float(weight), 4),
                                docs=sum(1 for t in texts if word in t)))
        if len(keywords) == args.top_k:
            break
    return KeywordsOutput(keywords=keywords)


class ClusterInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rows: list[Any]
    field: str = "text"
    k: int | None = Field(None, ge=1, le=500, description="number of clusters (default: about √(n/2), ≤ 30)")
    examples: int = Field(3, ge=1, le=20, description="representative texts per cluster")
    max_terms: int = Field(3000, ge=100, description="vocabulary size kept (the most common useful words)")


class Cluster(BaseModel):
    id: int
    size: int
    keywords: list[str]
    examples: list[str]
    members: list[int]


class ClusterOutput(BaseModel):
    clusters: list[Cluster]
    rows: list[Any] = Field(description="the input rows with a `cluster` field")
    count: int


@tool("text.cluster", cpu_bound=True)
async def text_cluster(args: ClusterInput, ctx: ToolContext) -> ClusterOutput:
    """Group short texts by topic (TF-IDF over jieba words, k-means on unit vectors, fixed seed)."""
    return await asyncio.to_thread(cluster, args)


def cluster(args: ClusterInput) -> ClusterOutput:
    from tools.text_cluster import cluster_texts

    texts = _texts(args.rows, args.field)
    if not texts:
        return ClusterOutput(clusters=[], rows=[], count=0)
    k = args.k or max(1, min(30, round((len(texts) / 2) ** 0.5)))
    labels, terms = cluster_texts([tokens(t) for t in texts], min(k, len(texts)), args.max_terms)
    clusters: list[Cluster] = []
    for cid in sorted(set(labels), key=lambda c: -labels.count(c)):
        members = [i for i, label in enumerate(labels) if label == cid]
        ordered = sorted(members, key=lambda i: -terms[i][1])  # closest to the centroid first
        clusters.append(Cluster(id=len(clusters), size=len(members), keywords=terms[members[0]][0],
                                examples=[texts[i] for i in ordered[:args.examples]], members=members))
    new_id = {members: c.id for c in clusters for members in c.members}
    rows = [({**row, "cluster": new_id[i]} if isinstance(row, dict) else {"text": row, "cluster": new_id[i]})
            for i, row in enumerate(args.rows)]
    return ClusterOutput(clusters=clusters, rows=rows, count=len(clusters))
