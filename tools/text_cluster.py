"""Spherical k-means over sparse TF-IDF vectors with numpy. Pure: tokens in, labels out.

Vectors are kept sparse (CSR arrays), so memory grows with the words in the texts, not with texts ×
vocabulary: 100,000 short comments cluster in a few hundred MB instead of gigabytes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

CHUNK = 1 << 18  # non-zeros per block of a product: bounds the (block × k) scratch array


@dataclass
class Sparse:
    """Rows of unit length in CSR form; `rows` gives each non-zero's row (sorted)."""

    indptr: Any
    indices: Any
    data: Any
    rows: Any
    n: int

    def dot(self, centroids: Any) -> Any:
        """self @ centroids.T → (n, k), block by block."""
        out = np.zeros((self.n, len(centroids)), dtype=np.float32)
        starts = self.indptr[:-1]
        row = 0
        while row < self.n:
            end = int(np.searchsorted(self.indptr, self.indptr[row] + CHUNK, side="right")) - 1
            end = min(max(end, row + 1), self.n)
            lo, hi = self.indptr[row], self.indptr[end]
            if hi > lo:
                contrib = self.data[lo:hi, None] * centroids.T[self.indices[lo:hi]]
                block_rows = np.arange(row, end)
                filled = block_rows[self.indptr[row + 1:end + 1] > starts[row:end]]
                out[filled] = np.add.reduceat(contrib, starts[filled] - lo, axis=0)
            row = end
        return out

    def dot_one(self, centroid: Any) -> Any:
        return np.bincount(self.rows, weights=self.data * centroid[self.indices], minlength=self.n)

    def sum_rows(self, labels: Any, k: int, terms: int) -> Any:
        totals = np.zeros((k, terms), dtype=np.float32)
        np.add.at(totals, (labels[self.rows], self.indices), self.data)
        return totals


def tfidf(docs: list[list[str]], max_terms: int) -> tuple[Sparse, list[str]]:
    """Words in one text only, or in more than half of them, carry no topic."""
    # dict.fromkeys, not set(): a set's order changes from process to process, and so would the vocabulary's ties
    df: Counter[str] = Counter(w for doc in docs for w in dict.fromkeys(doc))
    ceiling = max(2, len(docs) // 2)
    vocab = [w for w, n in df.most_common() if 2 <= n <= ceiling][:max_terms] or list(df)[:max_terms]
    index = {w: j for j, w in enumerate(vocab)}
    indptr, indices, data = [0], [], []
    for doc in docs:
        for word, count in Counter(w for w in doc if w in index).items():
            indices.append(index[word])
            data.append(1 + np.log(count))
        indptr.append(len(indices))
    ptr = np.asarray(indptr, dtype=np.int64)
    cols = np.asarray(indices, dtype=np.int64)
    idf = np.log((1 + len(docs)) / (1 + np.array([df[w] for w in vocab] or [0], dtype=np.float32))) + 1
    values = np.asarray(data, dtype=np.float32) * idf[cols] if len(cols) else np.zeros(0, dtype=np.float32)
    rows = np.repeat(np.arange(len(docs)), np.diff(ptr))
    norms = np.sqrt(np.bincount(rows, weights=values ** 2, minlength=len(docs)))
    values = (values / np.where(norms == 0, 1, norms)[rows]).astype(np.float32)
    return Sparse(ptr, cols, values, rows, len(docs)), vocab


def _kmeans(matrix: Sparse, k: int, terms: int, rng: Any, iterations: int) -> tuple[Any, Any, float]:
    n = matrix.n

    def row(i: int) -> Any:
        dense = np.zeros(terms, dtype=np.float32)
        lo, hi = matrix.indptr[i], matrix.indptr[i + 1]
        dense[matrix.indices[lo:hi]] = matrix.data[lo:hi]
        return dense

    centroids = [row(int(rng.integers(n)))]
    best = matrix.dot_one(centroids[0])
    while len(centroids) < k:  # k-means++ on cosine distance
        distance = np.clip(1 - best, 0, None) ** 2
        if distance.sum() == 0:
            break
        centroids.append(row(int(rng.choice(n, p=distance / distance.sum()))))
        best = np.maximum(best, matrix.dot_one(centroids[-1]))
    matrix_c = np.vstack(centroids)
    labels = np.full(n, -1)
    sims = matrix.dot(matrix_c)
    for _ in range(iterations):
        new_labels = sims.argmax(axis=1)
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
        totals = matrix.sum_rows(labels, len(matrix_c), terms)
        norms = np.linalg.norm(totals, axis=1, keepdims=True)
        moved = norms[:, 0] > 0  # an emptied cluster keeps its old centre
        matrix_c[moved] = totals[moved] / norms[moved]
        sims = matrix.dot(matrix_c)
    cohesion = float(sims[np.arange(n), labels].sum())
    return labels, matrix_c, cohesion


def cluster_texts(docs: list[list[str]], k: int, max_terms: int, iterations: int = 50, restarts: int = 8,
                  seed: int = 7) -> tuple[list[int], list[tuple[list[str], float]]]:
    """Labels per text, and per text (its cluster's top words, its similarity to the centroid).
    The best of `restarts` k-means++ runs (highest total similarity); fixed seed, so repeatable."""
    matrix, vocab = tfidf(docs, max_terms)
    terms = max(1, len(vocab))
    rng = np.random.default_rng(seed)
    labels, centroids, _ = max((_kmeans(matrix, k, terms, rng, iterations) for _ in range(restarts)),
                               key=lambda r: r[2])
    similarity = matrix.dot(centroids)[np.arange(matrix.n), labels]
    top_words = {c: [vocab[j] for j in np.argsort(-centroids[c], kind="stable")[:5] if centroids[c, j] > 0]
                 for c in range(len(centroids))}
    return labels.tolist(), [(top_words[int(c)], float(s)) for c, s in zip(labels, similarity, strict=True)]
