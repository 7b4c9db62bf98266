"""Run a suite: every case × repeat in parallel within limits, assertions scored, k-of-N decided per case."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from runner.config import ModelConfig, Project
from runner.evals.assertions import Verdict, evaluate
from runner.evals.cassette import Cassette
from runner.evals.load import Suite, SuiteError
from runner.evals.run_case import CaseRun, Fixtures, run_case
from runner.evals.suite import CaseSpec
from runner.i18n import N_, _
from runner.kb.index import KnowledgeBaseError, build, kb_root
from runner.models.llm import LlmClient, LlmRequest
from runner.store import Store, open_store
from runner.wording import number, status

Mode = Literal["live", "record", "replay"]
RULE = N_("A run passes when its weighted assertion score reaches the case threshold and it finished without error; "
          "a case passes when at least k of its N runs pass.")


class JudgeVerdict(BaseModel):
    score: int = Field(ge=0, le=10, description="0 = fails the rubric entirely, 10 = meets it fully")
    reason: str = Field(description="one or two sentences: what decided the score")


@dataclass
class CaseResult:
    case: CaseSpec
    runs: list[CaseRun] = field(default_factory=list)
    verdicts: list[list[Verdict]] = field(default_factory=list)  # per run
    scores: list[float] = field(default_factory=list)
    passes: list[bool] = field(default_factory=list)

    def passed(self, k: int) -> bool:
        return sum(self.passes) >= k


@dataclass
class SuiteRun:
    suite: Suite
    mode: Mode
    n: int
    k: int
    results: list[CaseResult]
    seconds: float
    workdir: Path
    currency: str = "CNY"  # the project's, for the costs a report shows


async def run_suite(suite: Suite, project: Project, *, mode: Mode = "live", repeat: int | None = None,
                    case_order: list[str] | None = None,
                    k: int | None = None, concurrency: int | None = None, real_models: bool = False,
                    progress: Callable[[str], None] | None = None) -> SuiteRun:
    case_order = case_order or [c.id for c in suite.cases]
    n = repeat or suite.spec.repeat.n
    k = min(k or suite.spec.repeat.k or n, n)
    started = time.monotonic()
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    workdir = project.state_dir / "evals" / suite.name / stamp
    case_project = _case_project(suite, project)
    knowledge = _knowledge(suite, workdir / "kb")
    cassette = Cassette(suite.cassette_path, "replay" if mode == "replay" else "record") \
        if mode != "live" else None
    judge_store = open_store(project)
    limit = asyncio.Semaphore(concurrency or suite.spec.concurrency)
    results = [CaseResult(c) for c in suite.cases]
    use_fake = mode != "replay" and not real_models
    with _fake_llm(suite, use_fake) as fake_models, _pages(suite) as page_base:
        models = {**case_project.settings.models, **fake_models}
        if page_base:  # the recorded pages are served on loopback: the case's tools may reach that address
            web = case_project.settings.web
            case_project = Project(project.root, case_project.settings.model_copy(update={"web": web.model_copy(
                update={"allow_private": [*web.allow_private, "127.0.0.1"]})}))

        async def one(result: CaseResult, r: int) -> None:
            async with limit:
                case = result.case
                settings = case_project.settings.model_copy(update={
                    "state_dir": str(workdir / f"{_safe(case.id)}-r{r}"), "models": models})
                replies = cassette.for_case(case.id, r) if cassette else None
                if knowledge is not None:  # each case's own copy, where its kb.search steps look
                    shutil.copytree(knowledge, kb_root(project.root, settings), dirs_exist_ok=True)
                run = await run_case(case, r, playbook=suite.playbook_of(case), project=Project(project.root, settings),
                                     fixtures=Fixtures(case.fixtures, suite.folder, page_base), replies=replies,
                                     folder=suite.folder)
                # paths and ports differ per machine and per run; reports and baselines compare without them
                run.local_paths = {run.run_dir: "<run>", settings.state_dir: "<case>", str(project.root): "<project>",
                                   **({page_base[0]: "<pages>"} if page_base else {})}
                judge = _Judge(suite, Project(project.root, case_project.settings.model_copy(
                    update={"models": models})), judge_store, replies, mode, r)
                verdicts = [await evaluate(a, run.record(), case, judge) for a in case.assert_]
                score, ok = _score(run, verdicts, case)
                result.runs.append(run)
                result.verdicts.append(verdicts)
                result.scores.append(round(score, 4))
                result.passes.append(ok)
                if progress:
                    progress(_("{case} #{n}: {result} ({status}, {seconds} s)").format(
                        case=case.id, n=r + 1, result=_("pass") if ok else _("FAIL"), status=status(run.status),
                        seconds=number(run.seconds, 1)))

        try:
            await asyncio.gather(*(one(res, r) for res in results for r in range(n)))
        finally:
            judge_store.close()
    for res in results:  # runs finish in any order; keep them by repeat
        order = sorted(range(len(res.runs)), key=lambda i: res.runs[i].repeat)
        res.runs = [res.runs[i] for i in order]
        res.verdicts = [res.verdicts[i] for i in order]
        res.scores = [res.scores[i] for i in order]
        res.passes = [res.passes[i] for i in order]
    if cassette is not None and mode == "record":
        cassette.save(_cassette_header(suite, models), case_order, {c.id for c in suite.cases})
    return SuiteRun(suite, mode, n, k, results, round(time.monotonic() - started, 3), workdir,
                    project.settings.currency)


def _score(run: CaseRun, verdicts: list[Verdict], case: CaseSpec) -> tuple[float, bool]:
    """(weighted mean score, passed): a run passes when it ended as the case expects and the weighted share
    of passing assertions reaches the case's threshold."""
    total = sum(v.weight for v in verdicts)
    score = sum(v.weight * v.score for v in verdicts) / total if total else 1.0
    weighted_pass = sum(v.weight for v in verdicts if v.passed) / total if total else 1.0
    ended_as_expected = run.status == case.expect_status and (run.error is None) == (case.expect_status == "done")
    threshold = 1.0 if case.threshold is None else case.threshold
    return score, ended_as_expected and weighted_pass >= threshold - 1e-9


def _knowledge(suite: Suite, root: Path) -> Path | None:
    """The suite's knowledge bases, indexed under `root`; None when it has none."""
    if not suite.spec.knowledge:
        return None
    for name, folder in suite.spec.knowledge.items():
        try:
            build(root, name, suite.folder / folder)
        except KnowledgeBaseError as exc:
            raise SuiteError([suite.source.diag(("knowledge", name), str(exc))]) from None
    return root


def _case_project(suite: Suite, project: Project) -> Project:
    models = {**project.settings.models, **suite.spec.models}
    return Project(project.root, project.settings.model_copy(update={"models": models}))


def _aliases(suite: Suite) -> set[str]:
    names = {"default"}
    pending = [suite.playbook]
    pending += suite.variants.values()  # a variant may call another model
    while pending:  # the playbook and its sub-playbooks
        playbook = pending.pop()
        names |= {playbook.spec.defaults.model} | {s.model for s in playbook.spec.steps if s.model}
        pending += playbook.children.values()
    if suite.spec.judge_model:
        names.add(suite.spec.judge_model)
    return {n for n in names if n}


@contextlib.contextmanager
def _fake_llm(suite: Suite, enabled: bool) -> Iterator[dict[str, ModelConfig]]:
    """With `fake_llm:`, live runs and recordings answer from the fake server; replays need no server."""
    fake = suite.spec.fake_llm
    if fake is None or not enabled:
        yield {}
        return
    from runner.testing import load_script

    with load_script(suite.folder / fake.script) as server:
        yield {alias: ModelConfig(model="openai/fake", api_base=server.url, api_key_env="", structured_output=True,
                                  input_price=fake.input_price, output_price=fake.output_price)
               for alias in _aliases(suite)}


@contextlib.contextmanager
def _pages(suite: Suite) -> Iterator[tuple[str, Path] | None]:
    """Recorded pages served on loopback from the folder that holds them all (they may sit beside the suite
    or in examples/), so web.fetch, feed.read and web.scrape run for real on them."""
    pages = [(suite.folder / f.page).resolve() for c in suite.cases for f in c.fixtures if f.page]
    if not pages:
        yield None
        return
    from runner.testing import serve_directory

    root = Path(os.path.commonpath([suite.folder.resolve(), *pages]))
    with serve_directory(root) as base:
        yield base, root


def _cassette_header(suite: Suite, models: dict[str, ModelConfig]) -> dict[str, Any]:
    used = sorted(_aliases(suite))
    source = (f"fake server answering from {suite.spec.fake_llm.script}" if suite.spec.fake_llm and
              models.get("default", ModelConfig(model="")).model == "openai/fake" else "the models configured")
    return {"suite": suite.name, "playbook": suite.spec.playbook, "recorded_against": source,
            "models": {a: models[a].model if a in models else a for a in used}}


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)[:40]


class _Judge:
    """LLM-judge rubrics on the pinned judge model. Live verdicts are cached per (model, rubric, value, repeat),
    so re-running a suite pays once while repeats still sample the judge; record/replay go through the cassette."""

    def __init__(self, suite: Suite, project: Project, store: Store, replies: Any, mode: Mode,
                 repeat: int) -> None:
        self.suite, self.project, self.store, self.mode, self.repeat = suite, project, store, mode, repeat
        self.client = LlmClient(project, None, replies=replies)

    async def __call__(self, rubric: str, value: Any, case: CaseSpec) -> tuple[float, str]:
        model = str(self.suite.spec.judge_model)
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=1)
        key = "judge:" + hashlib.sha256(json.dumps([model, rubric, shown, self.repeat], ensure_ascii=False)
                                        .encode()).hexdigest()
        if self.mode == "live" and (hit := self.store.cache_get(key)) is not None:
            return float(hit["score"]), str(hit["reason"])
        prompt = (f"你是严格的评审。按下面的评分标准给这份产出打分（0–10 的整数），并用一两句话说明理由。\n\n"
                  f"评分标准：{rubric}\n\n产出：\n{shown[:12000]}")
        result = await self.client.complete(LlmRequest(alias=model, messages=[{"role": "user", "content": prompt}],
                                                       output_model=JudgeVerdict, temperature=0, cache=False,
                                                       step="judge"))
        verdict = result.content
        self.store.cache_put(key, {"score": verdict["score"], "reason": verdict["reason"]})
        return float(verdict["score"]), str(verdict["reason"])
