"""Knowledge bases with an embedding model (`[models.embed]`, here the fake server's embeddings over HTTP on
loopback): `kb add` stores a vector per passage (only changed files embedded again), `kb search` and the
kb.search tool fuse BM25 with the vectors by reciprocal rank, and a knowledge base whose vectors came from
another model than the one configured is refused at validate, before anything is paid for."""

from __future__ import annotations

from pathlib import Path

import numpy
import pytest

from runner.kb.dense import fuse
from runner.kb.index import load, manifest
from runner.testing import FakeLLMServer, Faults
from runner.testing.fake_llm import text_vector
from tests.conftest import cli, run_playbook, write_playbook
from tests.test_kb import ANSWER, documents  # noqa: F401  (the fixture)

pytestmark = pytest.mark.usefixtures("english")


def _embed_with(project_dir: Path, server: FakeLLMServer, model: str = "openai/fake-embed") -> None:
    with (project_dir / "playbook.toml").open("a", encoding="utf-8") as toml:
        toml.write(f'\n[models.embed]\nmodel = "{model}"\napi_base = "{server.url}"\n'
                   'api_key_env = "FAKE_LLM_API_KEY"\n')


def _embedded(server: FakeLLMServer) -> list[str]:
    """Every text the server was asked to embed, in order."""
    return [text for r in server.requests if r["embeddings"] for text in r["body"]["input"]]


def test_fusion_ranks_what_both_rankings_find_first() -> None:
    fused = fuse([4, 7, 9], [9, 4, 1])
    assert [index for index, _score in fused] == [4, 9, 7, 1]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert fuse([], [3]) == [(3, pytest.approx(1 / 61))]


def test_kb_add_stores_a_vector_per_passage_and_embeds_only_what_changed(
        documents: Path, project_dir: Path, server: FakeLLMServer) -> None:  # noqa: F811
    _embed_with(project_dir, server)
    added = cli("kb", "add", "shop", str(documents), cwd=project_dir)
    assert added.returncode == 0, added.stderr
    root = project_dir / ".playbook" / "kb"
    data = manifest(root, "shop")
    assert data["dense"] == {"model": f"openai/fake-embed @ {server.url}", "dims": 1024}
    index = load(root, "shop")
    assert index.vectors.shape == (data["chunks"], 1024)
    assert numpy.allclose(numpy.linalg.norm(index.vectors, axis=1), 1.0, atol=1e-5)
    first = _embedded(server)
    assert len(first) == data["chunks"]
    assert all(len(r["body"]["input"]) <= 32 for r in server.requests if r["embeddings"])
    assert "searched with BM25 and vectors of openai/fake-embed" in cli("kb", "show", "shop", cwd=project_dir).stdout

    (documents / "活动说明.txt").write_text("【发货时间】\n付款后 24 小时内发货。\n", encoding="gb18030")
    again = cli("kb", "add", "shop", str(documents), cwd=project_dir)
    assert "(1 read, 6 unchanged, 0 removed)" in again.stdout, again.stdout
    assert _embedded(server)[len(first):] == ["发货时间\n付款后 24 小时内发货。"]
    # the kept passages' vectors were carried over, row for row
    rebuilt = load(root, "shop")
    for row, passage in enumerate(rebuilt.passages):
        old = next(i for i, p in enumerate(index.passages) if p == passage) if passage in index.passages else None
        if old is not None:
            assert numpy.array_equal(rebuilt.vectors[row], index.vectors[old])


def test_search_fuses_bm25_with_the_vectors(documents: Path, project_dir: Path,  # noqa: F811
                                            server: FakeLLMServer) -> None:
    _embed_with(project_dir, server)
    assert cli("kb", "add", "shop", str(documents), cwd=project_dir).returncode == 0
    searched = cli("kb", "search", "shop", "会员积分能抵钱吗", cwd=project_dir)
    assert searched.stdout.startswith("会员FAQ.xlsx › 会员积分怎么用  (0.03)"), searched.stdout  # first in both
    # a question sharing no word with the documents: BM25 finds nothing, the vectors still rank passages
    index = load(project_dir / ".playbook" / "kb", "shop")
    assert index.search("積分", k=2) == []
    found = index.search("積分", k=2, query_vector=numpy.asarray(text_vector("積分"), dtype=numpy.float32))
    assert [p.score for p in found] == [round(1 / 61, 6), round(1 / 62, 6)]  # ranked by the vectors alone
    assert found[0].heading == "会员积分怎么用"  # 分 is shared; 積 is 积 written the traditional way


def test_a_run_searches_with_the_vectors_and_asks_each_question_once(
        documents: Path, project_dir: Path, server: FakeLLMServer) -> None:  # noqa: F811
    _embed_with(project_dir, server)
    assert cli("kb", "add", "shop", str(documents), cwd=project_dir).returncode == 0
    before = len(_embedded(server))
    path = write_playbook(project_dir, ANSWER)
    outcome = run_playbook(path, {"comments": ["发票怎么开", "退款几天到账", "发票怎么开"]})
    assert outcome.status == "done", outcome.error
    sources = [answer["sources"] for answer in outcome.outputs["answers"]]
    assert sources[0][0]["cite"] == "客服话术.csv › 可以开发票吗"
    assert sources[1][0]["cite"] == "客服话术.csv › 多久能退款"
    assert sorted(_embedded(server)[before:]) == ["发票怎么开", "退款几天到账"]  # the repeat was remembered


def test_vectors_of_another_model_are_refused_before_the_run(documents: Path, project_dir: Path,  # noqa: F811
                                                              server: FakeLLMServer) -> None:
    _embed_with(project_dir, server)
    assert cli("kb", "add", "shop", str(documents), cwd=project_dir).returncode == 0
    write_playbook(project_dir, ANSWER)
    toml = project_dir / "playbook.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace("openai/fake-embed", "openai/other-embed"),
                    encoding="utf-8")
    checked = cli("validate", "pb.yaml", cwd=project_dir)
    assert checked.returncode == 2
    assert (f"kb 'shop' was indexed with the embedding model openai/fake-embed @ {server.url}; [models.embed] is now "
            f"openai/other-embed @ {server.url}: index it again with playbook kb add shop FOLDER") in checked.stderr
    ran = cli("run", "pb.yaml", "-i", "comments=[发票]", cwd=project_dir)
    assert ran.returncode == 2 and "index it again" in ran.stderr
    assert "index it again" in cli("kb", "search", "shop", "发票", cwd=project_dir).stderr
    toml.write_text(toml.read_text(encoding="utf-8").split("[models.embed]")[0], encoding="utf-8")
    unset = cli("validate", "pb.yaml", cwd=project_dir)
    assert unset.returncode == 2 and "this project has no [models.embed]" in unset.stderr
    for done in (checked, ran, unset):
        assert "Traceback" not in done.stderr


def test_an_embedding_model_that_refuses_leaves_the_last_index_in_place(
        documents: Path, project_dir: Path, server: FakeLLMServer) -> None:  # noqa: F811
    _embed_with(project_dir, server)
    server.faults = Faults(sequence=[429])  # one rate limit: tried again, then it goes through
    assert cli("kb", "add", "shop", str(documents), cwd=project_dir).returncode == 0
    assert [r["status"] for r in server.requests if r["embeddings"]][:2] == [429, 200]
    (documents / "新规则.md").write_text("# 新规则\n\n会员日全场九折。\n", encoding="utf-8")
    server.faults = Faults(auth_error=True)
    refused = cli("kb", "add", "shop", str(documents), cwd=project_dir)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "embedding model 'embed' (openai/fake-embed) rejected the API key (401); set FAKE_LLM_API_KEY" \
        in refused.stderr
    server.faults = Faults()
    kept = cli("kb", "search", "shop", "会员积分能抵钱吗", cwd=project_dir)
    assert kept.returncode == 0 and kept.stdout.startswith("会员FAQ.xlsx › 会员积分怎么用")
    assert "新规则.md" not in manifest(project_dir / ".playbook" / "kb", "shop")["files"]


def test_a_model_outside_the_openai_compatible_path_embeds_through_litellm(server: FakeLLMServer,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A model id without `openai/` goes through litellm.aembedding (here litellm's OpenAI provider, pointed at the
    fake server): the same vectors as the direct path, in order."""
    import asyncio

    from runner.config import ModelConfig
    from runner.models import embed, openai_compatible

    monkeypatch.setenv("FAKE_LLM_API_KEY", "sk-fake-key-123")
    config = ModelConfig(model="text-embedding-3-small", api_base=server.url, api_key_env="FAKE_LLM_API_KEY")
    assert not openai_compatible.handles(config)
    vectors = asyncio.run(embed.embed(config, ["退货运费谁出", "发票在哪下载"]))
    assert [numpy.round(v, 5).tolist() for v in vectors] == \
        [numpy.round(text_vector(t), 5).tolist() for t in ("退货运费谁出", "发票在哪下载")]
    assert server.requests[-1]["embeddings"] and server.requests[-1]["model"] == "text-embedding-3-small"


def test_a_model_that_changes_its_vectors_length_is_named_not_a_traceback(
        documents: Path, project_dir: Path, server: FakeLLMServer) -> None:  # noqa: F811
    """The same model id answering vectors of another length (a provider's new version) cannot be compared with
    the index: the search says so and what to run, in the CLI and in a run."""
    _embed_with(project_dir, server)
    assert cli("kb", "add", "shop", str(documents), cwd=project_dir).returncode == 0
    server.embedding_dims = 256
    searched = cli("kb", "search", "shop", "发票", cwd=project_dir)
    assert searched.returncode == 2 and "Traceback" not in searched.stderr
    assert "now answers vectors of 256 numbers, not 1024; index kb 'shop' again with playbook kb add shop FOLDER" \
        in searched.stderr
    outcome = run_playbook(write_playbook(project_dir, ANSWER), {"comments": ["发票怎么开"]})
    assert outcome.status == "failed" and "now answers vectors of 256 numbers" in (outcome.error or "")
    assert "internal error" not in (outcome.error or "")
