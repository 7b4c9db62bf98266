"""A project's knowledge bases: built from a folder, kept under `<artifacts>/kb/<name>/` (the shared artifacts root
on a team server, so every worker reads the same index), searched with BM25 over jieba's words.

Why bm25s: it is maintained, stores the index as scipy sparse arrays (10,000 passages index in well under a second,
a query scores them all in about a millisecond) and saves to plain .npy/.json files; rank_bm25, the usual other
choice, is unmaintained and scores every document in Python per query.

A build writes a new version folder and then switches `current` to it in one rename, so a search (another process,
a worker) never reads half an index, and a `kill -9` during a build leaves the last good one in place. Builds of
one knowledge base wait for each other (a lock file). Re-indexing reads only files whose content hash changed;
the others' passages and words are taken from the last version."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.config import ModelConfig
from runner.errors import did_you_mean
from runner.i18n import _
from runner.kb import dense
from runner.kb.chunk import Chunk
from runner.kb.read import Unreadable, chunks_of, content_hash, documents
from runner.models.embed import EmbedError, configured, identity

NAME = re.compile(r"[A-Za-z0-9_\-\u4e00-\u9fff]{1,64}")
_STOP = frozenset((  # question words and particles every FAQ entry shares: they would match them all
    "的", "了", "吗", "呢", "吧", "啊", "是", "我", "你", "他", "她", "它", "们", "在", "和",
    "与", "及", "或", "有", "就", "都", "也", "要", "会", "能", "可以", "怎么", "怎样", "如何",
    "什么", "为什么", "为何", "哪些", "哪里", "一个", "这个", "那个", "请问", "一下", "时候", "还是",
    "以及", "the", "a", "an", "of", "to", "is", "are", "how", "what", "why", "do", "does", "can", "i",
    "in", "on", "for", "and", "or",
))
_WORD = re.compile(r"\w", re.UNICODE)


class KnowledgeBaseError(Exception):
    """A knowledge base that is missing, empty or misnamed; the message says what to run."""


@dataclass
class BuildReport:
    chunks: int = 0
    read: list[str] = field(default_factory=list)  # files (re)read
    kept: list[str] = field(default_factory=list)  # unchanged: their passages taken from the last version
    removed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why)


@dataclass(frozen=True)
class Passage:
    text: str
    file: str
    heading: str
    row: int | None
    score: float

    @property
    def cite(self) -> str:
        return Chunk(self.text, self.file, self.heading, self.row).source()


def words(text: str) -> list[str]:
    """The words BM25 counts: jieba's search-mode cut (a long word and its parts), lower-cased, without
    punctuation and question words that every FAQ entry shares."""
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    return [w for w in (t.strip().lower() for t in jieba.cut_for_search(text)) if w and w not in _STOP
            and _WORD.search(w)]


def kb_root(project_dir: Path, settings: Any) -> Path:
    """Where a project's knowledge bases live: `<[store] artifacts>/kb`, else `<state folder>/kb`."""
    artifacts = getattr(getattr(settings, "store", None), "artifacts", None)
    base = project_dir / Path(artifacts).expanduser() if artifacts else \
        project_dir / getattr(settings, "state_dir", ".playbook")
    return base / "kb"


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise KnowledgeBaseError(_("'{name}' is not a knowledge base name: use letters, digits, _ and - (Chinese "
                                   "characters too), at most 64").format(name=name))
    return name


def names(root: Path) -> list[str]:
    return sorted(p.name for p in root.glob("*") if (p / "current").is_file()) if root.is_dir() else []


def manifest(root: Path, name: str) -> dict[str, Any]:
    """The current version's manifest; KnowledgeBaseError when there is none."""
    data: dict[str, Any] = json.loads((_existing(root, name) / "manifest.json").read_text(encoding="utf-8"))
    return data


def _existing(root: Path, name: str) -> Path:
    """The current version's folder, or KnowledgeBaseError saying how to make one."""
    version = _current(root, name)
    if version is None:
        known = names(root)
        also = did_you_mean(name, known) or (_(" (there are: {names})").format(names=", ".join(known)) if known
                                             else "")
        raise KnowledgeBaseError(_("kb '{name}' does not exist: playbook kb add {name} FOLDER{also}").format(
                                     name=name, also=also))
    return version


def build(root: Path, name: str, folder: Path, *, embed_with: ModelConfig | None = None,
          progress: Callable[[int, int, str], None] = lambda done, total, file: None) -> BuildReport:
    """Index `folder` as knowledge base `name` (creating or updating it), with dense vectors from `embed_with`
    (the project's `[models.embed]`) when given. `progress(done, total, what)` is called for each file, then for
    each batch of passages embedded."""
    check_name(name)
    if not folder.is_dir():
        raise KnowledgeBaseError(_("'{folder}' is not a folder; give the folder of documents to index").format(
                                     folder=folder))
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f"{name}.lock"):
        return _build(root, name, folder.resolve(), embed_with, progress)


def _build(root: Path, name: str, folder: Path, embed_with: ModelConfig | None,
           progress: Callable[[int, int, str], None]) -> BuildReport:
    """Passages are streamed to chunks.jsonl as they are cut (a file's, or an unchanged file's from the last
    version), and only their words' ids are kept, as int32 arrays: a 100 MB document is indexed in bounded memory."""
    import bm25s
    import numpy

    report = BuildReport()
    old = _previous(_current(root, name))
    model = identity(embed_with) if embed_with is not None else None
    old_vectors = old.vectors if model is not None and old.model == model else None
    reused: list[int | None] = []  # per passage: its row in the last version's vectors, or None to embed it
    vocabulary: dict[str, int] = {}
    ids: list[Any] = []  # per passage: its words as ids into `vocabulary`
    files = documents(folder)
    version = root / name / f"v{time.time_ns()}"
    version.mkdir(parents=True)
    entries: dict[str, Any] = {}
    with (version / "chunks.jsonl").open("w", encoding="utf-8") as out:
        for done, path in enumerate(files):
            file = path.relative_to(folder).as_posix()
            progress(done, len(files), file)
            start, count = out.tell(), len(ids)
            try:
                digest = content_hash(path)
                kept = old.hashes.get(file) == digest and file in old.spans
                passages: Iterator[dict[str, Any]] = old.passages_of(file) if kept else (
                    {"text": c.text, "file": c.file, "heading": c.heading, "row": c.row,
                     "words": words(f"{c.heading}\n{c.text}")} for c in chunks_of(path, file))
                for passage in passages:
                    line = passage.pop("line", None)
                    reused.append(line if old_vectors is not None else None)
                    ids.append(numpy.fromiter((vocabulary.setdefault(w, len(vocabulary)) for w in passage["words"]),
                                              dtype=numpy.int32))
                    out.write(json.dumps(passage, ensure_ascii=False) + "\n")
            except (Unreadable, OSError) as exc:  # what this file wrote is taken back; the rest goes on
                out.seek(start)
                out.truncate()
                del ids[count:], reused[count:]
                report.skipped.append((file, str(exc) if isinstance(exc, Unreadable) else exc.strerror or str(exc)))
                continue
            (report.kept if kept else report.read).append(file)
            entries[file] = {"sha256": digest, "chunks": len(ids) - count}
        progress(len(files), len(files), "")
    report.removed = sorted(set(old.hashes) - {p.relative_to(folder).as_posix() for p in files})
    report.chunks = len(ids)
    if not ids:  # nothing to search: the last good version (if any) stays
        shutil.rmtree(version, ignore_errors=True)
        raise KnowledgeBaseError(_("no passage was found in '{folder}' ({files} files; {skipped} could not be "
                                   "read): a knowledge base needs documents with text").format(
                                     folder=folder, files=len(files), skipped=len(report.skipped)))
    retriever = bm25s.BM25()
    retriever.index((ids, vocabulary), show_progress=False)
    retriever.save(str(version / "bm25"), show_progress=False)
    dims = None
    if embed_with is not None:
        try:
            vectors = _vectors(version, embed_with, reused, old_vectors, progress)
        except EmbedError as exc:  # nothing switched: the last good version stays
            shutil.rmtree(version, ignore_errors=True)
            raise KnowledgeBaseError(str(exc)) from None
        dense.save(version, vectors)
        dims = int(vectors.shape[1])
    (version / "manifest.json").write_text(json.dumps({
        "name": name, "folder": str(folder), "built_at": time.time(), "chunks": len(ids), "files": entries,
        "skipped": report.skipped, **({"dense": {"model": model, "dims": dims}} if model else {})},
        ensure_ascii=False, indent=1), encoding="utf-8")
    pointer = root / name / "current.tmp"
    pointer.write_text(version.name, encoding="utf-8")
    os.replace(pointer, root / name / "current")  # the switch: one rename
    for stale in (root / name).glob("v*"):
        if stale != version:
            shutil.rmtree(stale, ignore_errors=True)
    return report


def _vectors(version: Path, config: ModelConfig, reused: list[int | None], old_vectors: Any,
             progress: Callable[[int, int, str], None]) -> Any:
    """Every passage's vector: those of unchanged files copied from the last version, the rest embedded."""
    import numpy

    todo = [i for i, line in enumerate(reused) if line is None]
    if todo:
        texts = []
        with (version / "chunks.jsonl").open(encoding="utf-8") as lines:
            wanted = set(todo)
            for i, text in enumerate(lines):
                if i in wanted:
                    passage = json.loads(text)
                    texts.append(dense.passage_text(passage.get("heading") or "", passage["text"]))
        label = _("embedding passages")
        progress(0, len(texts), label)
        fresh = dense.vectors_of(config, texts, lambda done: progress(done, len(texts), label))
    dims = fresh.shape[1] if todo else old_vectors.shape[1]
    if old_vectors is not None and todo and old_vectors.shape[1] != dims:
        raise EmbedError(_("embedding model '{model}' now answers vectors of {dims} numbers, not {old}").format(
            model=identity(config), dims=dims, old=old_vectors.shape[1]))
    vectors = numpy.empty((len(reused), dims), dtype=numpy.float32)
    for row, line in enumerate(reused):
        if line is not None:
            vectors[row] = old_vectors[line]
    if todo:
        vectors[todo] = fresh
    return vectors


def remove(root: Path, name: str) -> None:
    manifest(root, name)  # raises when it does not exist
    with _locked(root / f"{name}.lock"):
        shutil.rmtree(root / name)
    with contextlib.suppress(OSError):
        (root / f"{name}.lock").unlink()


class Index:
    """One version of a knowledge base, loaded: its passages and its BM25 index."""

    def __init__(self, version: Path) -> None:
        import bm25s

        self.version = version
        self.passages = [json.loads(line) for line in (version / "chunks.jsonl").open(encoding="utf-8")]
        for passage in self.passages:
            passage.pop("words", None)  # only the build needs them
        self.retriever = bm25s.BM25.load(str(version / "bm25"), load_vocab=True)  # a build never saves an empty one
        data = json.loads((version / "manifest.json").read_text(encoding="utf-8"))
        self.dense_model: str | None = (data.get("dense") or {}).get("model")  # None: BM25 alone
        self.vectors = dense.load(version) if self.dense_model else None

    def search(self, query: str, k: int = 3, min_score: float = 0.0, query_vector: Any = None) -> list[Passage]:
        """The best `k` passages: by BM25 alone, or — given the query's vector and an index with vectors — BM25
        and cosine similarity fused by reciprocal rank (`score` is then the fused score, at most 2/61)."""
        asked = words(query)
        known = any(w in self.retriever.vocab_dict for w in asked)
        # get_scores and a partial sort: bm25s's retrieve() costs 25 times more per query (its batching set-up)
        scores = self.retriever.get_scores(asked) if known else None
        fused = query_vector is not None and self.vectors is not None
        if fused:
            lexical = dense.ranked(scores, positive=True) if scores is not None else []
            best = dense.fuse(lexical, dense.ranked(self.vectors @ query_vector))
        elif scores is not None:
            best = [(i, float(scores[i])) for i in dense.ranked(scores, k, positive=True)]
        else:
            return []
        found = []
        for index, score in best[:k]:
            if score < min_score:
                continue
            p = self.passages[index]
            found.append(Passage(p["text"], p["file"], p.get("heading") or "", p.get("row"),
                                 round(score, 6 if fused else 4)))  # fused scores are small
        return found


async def query_vector_for(index: Index, name: str, query: str, settings: Any) -> Any:
    """The query's vector when knowledge base `name` has vectors (None: BM25 alone). KnowledgeBaseError when they
    came from another model than the project's `[models.embed]`; EmbedError when that model cannot be called."""
    if index.dense_model is None:
        return None
    if problem := dense.mismatch(name, index.dense_model, settings):
        raise KnowledgeBaseError(problem)
    config = configured(settings)
    assert config is not None  # mismatch() said it is the model the vectors came from
    vector = await dense.query_vector(config, query)
    if index.vectors is not None and vector.shape[0] != index.vectors.shape[1]:  # the provider changed the model
        raise KnowledgeBaseError(_("embedding model '{model}' now answers vectors of {dims} numbers, not {old}; "
                                   "index kb '{name}' again with playbook kb add {name} FOLDER").format(
                                     model=index.dense_model, dims=vector.shape[0], old=index.vectors.shape[1],
                                     name=name))
    return vector


_loaded: dict[tuple[Path, str], Index] = {}
_loading = threading.Lock()


def load(root: Path, name: str) -> Index:
    """The current version, loaded once per process (again only after a build switched versions)."""
    version = _existing(root, name)
    key = (root.resolve(), name)
    with _loading:
        cached = _loaded.get(key)
        if cached is None or cached.version != version:
            cached = _loaded[key] = Index(version)
        return cached


def _current(root: Path, name: str) -> Path | None:
    try:
        version = root / name / (root / name / "current").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return version if (version / "manifest.json").is_file() else None


@dataclass
class _Last:
    """What the last version has that a new build can keep: files → hash, files → where their passages are in its
    chunks.jsonl (byte offset, count, first line), and its vectors and the model that made them."""
    hashes: dict[str, str] = field(default_factory=dict)
    spans: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    chunks: Path | None = None
    model: str | None = None
    vectors: Any = None

    def passages_of(self, file: str) -> Iterator[dict[str, Any]]:
        """A kept file's passages (with their words and their line, the row of their vector), read one by one."""
        assert self.chunks is not None
        offset, count, first = self.spans[file]
        with self.chunks.open("rb") as lines:
            lines.seek(offset)
            for number in range(first, first + count):
                passage = json.loads(lines.readline())
                passage["line"] = number
                yield passage


def _previous(version: Path | None) -> _Last:
    if version is None:
        return _Last()
    data = json.loads((version / "manifest.json").read_text(encoding="utf-8"))
    chunks = version / "chunks.jsonl"
    last = _Last(hashes={file: entry["sha256"] for file, entry in data.get("files", {}).items()}, chunks=chunks,
                 model=(data.get("dense") or {}).get("model"), vectors=dense.load(version))
    offset = 0
    with chunks.open("rb") as lines:  # a build writes a file's passages together
        for number, line in enumerate(lines):
            file = json.loads(line)["file"]
            start, count, first = last.spans.get(file, (offset, 0, number))
            last.spans[file] = (start, count + 1, first)
            offset += len(line)
    return last


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
