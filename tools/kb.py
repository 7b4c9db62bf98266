"""kb.search: passages of a project's knowledge base (`playbook kb add`) that answer a question, with their
source to cite. The index is loaded once per process, so a map of one query per comment pays for it once; with
`[models.embed]` each query is also embedded (one call, remembered for the process) and the rankings fused."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from runner.kb.index import KnowledgeBaseError, kb_root, load, query_vector_for
from runner.models.embed import EmbedError
from runner.registry import ToolArgumentError, ToolContext, tool


class EmbeddingFailed(ToolArgumentError):
    """The embedding model could not embed the query: the model's state, not a mistake in the argument."""

    about_the_argument = False

    def __init__(self, message: str) -> None:
        super().__init__("query", message)


class KbSearchInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kb: str = Field(description="the knowledge base's name (`playbook kb list`)")
    query: str = Field(description="the question, or the text to find passages for")
    k: int = Field(3, ge=1, le=50, description="passages at most")
    min_score: float = Field(0.0, ge=0, description="leave out passages scoring less (BM25 alone: the scale depends "
                                                    "on the knowledge base; with [models.embed]: the fused score, "
                                                    "at most 0.033; `playbook kb search` shows the scores)")


class Source(BaseModel):
    file: str = Field(description="the document, relative to the indexed folder")
    heading: str = Field(description="its heading path (` › `-joined); a FAQ sheet row: the question")
    row: int | None = Field(None, description="a FAQ sheet's row number")


class KbPassage(BaseModel):
    text: str
    source: Source
    cite: str = Field(description="the source as one line: `退换货政策.md › 七天无理由`")
    score: float


class KbSearchOutput(BaseModel):
    passages: list[KbPassage] = Field(description="best first; empty when nothing relevant was found")


@tool("kb.search", journal=False)
async def kb_search(args: KbSearchInput, ctx: ToolContext) -> KbSearchOutput:
    """Passages of a knowledge base that answer a question, best first, each with its source."""
    try:
        index = load(kb_root(ctx.project_dir, ctx.settings), args.kb)
        vector = await query_vector_for(index, args.kb, args.query, ctx.settings)
    except KnowledgeBaseError as exc:
        raise ToolArgumentError("kb", str(exc)) from None
    except EmbedError as exc:
        raise EmbeddingFailed(str(exc)) from None
    found = index.search(args.query, args.k, args.min_score, vector)
    return KbSearchOutput(passages=[KbPassage(text=p.text, source=Source(file=p.file, heading=p.heading, row=p.row),
                                              cite=p.cite, score=p.score) for p in found])
