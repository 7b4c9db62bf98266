"""Spherical k-means over TF-IDF vectors with numpy. Pure: tokens in, labels out."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np


def tfidf(docs: list[list[str]], max_terms: int) -> tuple[Any, list[str]]:
    """Rows of unit length. Words in one text only, or in more than half of them, carry no topic."""
    df: Counter[str] = Counter(w for doc in docs for w in set(doc))
    ceiling = max(2, len(docs) // 2)
    vocab = [w for w, n in df.most_common() if 2 <= n <= ceiling][:max_terms] or list(df)[:max_terms]
    index = {w: j for j, w in enumerate(vocab)}
    matrix = np.zeros((len(docs), max(1, len(vocab))), dtype=np.float32)
    for i, doc in enumerate(docs):
        for word, count in Counter(doc).items():
            if word in index:
                matrix[i, index[word]] = 1 + np.log(count)
    idf = np.log((1 + len(docs)) / (1 + np.array([df[w] for w in vocab] or [0], dtype=np.float32))) + 1
    matrix *= idf
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix /= np.where(norms == 0, 1, norms)
    return matrix, vocab


def _kmeans(matrix: Any, k: int, rng: Any, iterations: int) -> tuple[Any, Any, float]:
    n = len(matrix)
    centroids = matrix[[int(rng.integers(n))]]
    while len(centroids) < k:  # k-means++ on cosine distance
        distance = np.clip(1 - (matrix @ centroids.T).max(axis=1), 0, None) ** 2
        if distance.sum() == 0:
            break
        centroids = np.vstack([centroids, matrix[rng.choice(n, p=distance / distance.sum())]])
    labels = np.full(n, -1)
    for _ in range(iterations):
        new_labels = (matrix @ centroids.T).argmax(axis=1)
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
        for c in range(len(centroids)):
            members = matrix[labels == c]
            if len(members):
                mean = members.mean(axis=0)
                centroids[c] = mean / (np.linalg.norm(mean) or 1)
    cohesion = float((matrix * centroids[labels]).sum())
    return labels, centroids, cohesion


def cluster_texts(docs: list[list[str]], k: int, max_terms: int, iterations: int = 50, restarts: int = 8,
                  seed: int = 7) -> tuple[list[int], list[tuple[list[str], float]]]:
    """Labels per text, and per text (its cluster's top words, its similarity to the centroid).
    The best of `restarts` k-means++ runs (highest total similarity); fixed seed, so repeatable."""
    matrix, vocab = tfidf(docs, max_terms)
    rng = np.random.default_rng(seed)
    labels, centroids, _ = max((_kmeans(matrix, k, rng, iterations) for _ in range(restarts)), key=lambda r: r[2])
    similarity = (matrix * centroids[labels]).sum(axis=1)
    top_words = {c: [vocab[j] for j in np.argsort(-centroids[c])[:5] if centroids[c, j] > 0]
                 for c in range(len(centroids))}
    return labels.tolist(), [(top_words[int(c)], float(s)) for c, s in zip(labels, similarity, strict=True)]
