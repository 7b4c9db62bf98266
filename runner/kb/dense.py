"""Dense vectors beside BM25, when the project names an embedding model (`[models.embed]`): each passage's
vector is stored with the index (`vectors.npy`, unit length, float32), a query is embedded by the same model,
and the two rankings are fused by reciprocal rank (RRF: each list gives a passage 1/(60 + its rank)).

Why RRF: BM25 scores and cosine similarities are on scales that cannot be added, and RRF needs no weight tuned
per corpus; a passage either ranker finds near the top rises, one both find rises most. Which model made the
vectors is recorded, so a query is never compared with vectors of another model."""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runner.config import ModelConfig
from runner.i18n import _
from runner.models.embed import configured, embed, identity

RRF_K = 60
CANDIDATES = 50  # of each ranking: a passage below both is not fused
TEXT_CHARS = 2000  # of a passage sent to the model: under every embedding model's input limit
FILE = "vectors.npy"

_queries: OrderedDict[tuple[str, str], Any] = OrderedDict()  # (model, query) → vector: a map repeats questions
_queries_lock = threading.Lock()


def passage_text(heading: str, text: str) -> str:
    return f"{heading}\n{text}"[:TEXT_CHARS] if heading else text[:TEXT_CHARS]


def vectors_of(config: ModelConfig, texts: list[str], progress: Callable[[int], None]) -> Any:
    """The unit vectors of `texts` as one float32 matrix (rows in order)."""
    import numpy

    rows = asyncio.run(embed(config, texts, progress=progress)) if texts else []
    return unit(numpy.asarray(rows, dtype=numpy.float32))


def unit(matrix: Any) -> Any:
    import numpy

    norms = numpy.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / numpy.where(norms == 0, 1, norms)


def save(version: Path, vectors: Any) -> None:
    import numpy

    numpy.save(version / FILE, vectors)


def load(version: Path) -> Any:
    import numpy

    path = version / FILE
    return numpy.load(path, mmap_mode="r") if path.is_file() else None


def mismatch(name: str, built_with: str | None, settings: Any) -> str | None:
    """Why a knowledge base's vectors cannot be searched with this project's `[models.embed]`, or None."""
    config = configured(settings)
    if built_with is None:
        return None  # BM25 alone: a model configured since is used from the next `kb add`
    if config is None:
        return _("kb '{name}' was indexed with the embedding model {model}, and this project has no [models.embed]: "
                 "add it back, or index again with playbook kb add {name} FOLDER to search with BM25 "
                 "alone").format(name=name, model=built_with)
    if identity(config) != built_with:
        return _("kb '{name}' was indexed with the embedding model {model}; [models.embed] is now {now}: index it "
                 "again with playbook kb add {name} FOLDER").format(name=name, model=built_with,
                                                                    now=identity(config))
    return None


async def query_vector(config: ModelConfig, query: str) -> Any:
    """A query's unit vector, remembered for the process (the last 10,000 queries)."""
    import numpy

    key = (identity(config), query)
    with _queries_lock:
        if key in _queries:
            _queries.move_to_end(key)
            return _queries[key]
    vector = unit(numpy.asarray((await embed(config, [query]))[0], dtype=numpy.float32))
    with _queries_lock:
        _queries[key] = vector
        while len(_queries) > 10_000:
            _queries.popitem(last=False)
    return vector


def ranked(scores: Any, limit: int = CANDIDATES, positive: bool = False) -> list[int]:
    """Indices of the best `limit` scores, best first (only scores above 0 when `positive`)."""
    import numpy

    limit = min(limit, len(scores))
    if limit == 0:
        return []
    best = numpy.argpartition(-scores, limit - 1)[:limit]
    order = [int(i) for i in best[numpy.argsort(-scores[best], kind="stable")]]
    return [i for i in order if scores[i] > 0] if positive else order


def fuse(*rankings: list[int]) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion of rankings (indices, best first): (index, fused score), best first."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, index in enumerate(ranking, 1):
            fused[index] = fused.get(index, 0.0) + 1 / (RRF_K + rank)
    return sorted(fused.items(), key=lambda pair: (-pair[1], pair[0]))
