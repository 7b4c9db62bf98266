"""Topic clusters of short texts: TF-IDF (scikit-learn) and k-means on unit vectors. Pure: tokens in, labels out."""

from __future__ import annotations

from typing import Any

import numpy as np


def _identity(doc: list[str]) -> list[str]:
    return doc


def tfidf(docs: list[list[str]], max_terms: int) -> tuple[Any, list[str]]:
    """Words in one text only, or in more than half of them, carry no topic; when that leaves no word at all
    (a handful of texts), every word counts."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    for min_df, max_df in ((2, max(2, len(docs) // 2)), (1, 1.0)):
        vectorizer = TfidfVectorizer(analyzer=_identity, min_df=min_df, max_df=max_df, max_features=max_terms,
                                     sublinear_tf=True, dtype=np.float32)
        try:
            matrix = vectorizer.fit_transform(docs)
        except ValueError:  # nothing left after pruning, or no words at all
            continue
        return matrix, list(vectorizer.get_feature_names_out())
    from scipy.sparse import csr_matrix

    return csr_matrix((len(docs), 1), dtype=np.float32), []


def cluster_texts(docs: list[list[str]], k: int, max_terms: int, iterations: int = 50, restarts: int = 8,
                  seed: int = 7) -> tuple[list[int], list[tuple[list[str], float]]]:
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import normalize

    matrix, vocab = tfidf(docs, max_terms)
    k = min(k, matrix.shape[0])
    model = KMeans(n_clusters=k, n_init=restarts, max_iter=iterations, random_state=seed).fit(matrix)
    labels = model.labels_
    centroids = normalize(model.cluster_centers_)
    similarity = np.asarray(matrix @ centroids.T)[np.arange(matrix.shape[0]), labels]  # n × k, not n × terms
    top_words = {c: [vocab[j] for j in np.argsort(-centroids[c], kind="stable")[:5] if centroids[c, j] > 0]
                 for c in range(len(centroids))}
    return labels.tolist(), [(top_words[int(c)], float(s)) for c, s in zip(labels, similarity, strict=True)]
