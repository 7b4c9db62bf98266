"""`playbook kb add|list|show|search|remove`: the project's knowledge bases (runner/kb/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from runner.cli.app import app
from runner.cli.common import err, error_line, out, project_here
from runner.i18n import _

kb_app = typer.Typer(help=_("Knowledge bases: index a folder of documents, search it (the kb.search tool)."),
                     no_args_is_help=True)
app.add_typer(kb_app, name="kb")


def _root() -> Path:
    from runner.kb.index import kb_root

    project = project_here()
    return kb_root(project.root, project.settings)


def _how(data: dict[str, Any]) -> str:
    model = (data.get("dense") or {}).get("model")
    return _("BM25 and vectors of {model}").format(model=model) if model else _("BM25")


def _failing(action: Any) -> Any:
    from runner.kb.index import KnowledgeBaseError

    try:
        return action()
    except KnowledgeBaseError as exc:
        error_line(str(exc))
        raise typer.Exit(2) from None


@kb_app.command("add")
def add(name: Annotated[str, typer.Argument(help=_("its name, e.g. faq"))],
        folder: Annotated[Path, typer.Argument(help=_("the folder of documents (md, txt, html, docx, pdf, FAQ "
                                                      "sheets in csv or xlsx)"))]) -> None:
    """Index a folder as a knowledge base, or bring one up to date (only changed files are read again)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from runner.kb.index import build
    from runner.models.embed import configured

    root = _root()
    embed_with = configured(project_here().settings)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[file]}"), console=err, transient=True) as bar:
        task = bar.add_task(_("indexing"), total=None, file="")

        def progress(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, file=what)

        report = _failing(lambda: build(root, name, folder, embed_with=embed_with, progress=progress))
    out.print(_("kb '{name}': {chunks} passages from {files} files ({read} read, {kept} unchanged, {removed} "
                "removed)").format(name=name, chunks=report.chunks, files=len(report.read) + len(report.kept),
                                   read=len(report.read), kept=len(report.kept), removed=len(report.removed)),
              markup=False)
    for file, why in report.skipped:
        err.print("[yellow]" + _("skipped") + f"[/] {escape(file)}: {escape(why)}")


@kb_app.command("list")
def list_() -> None:
    """The project's knowledge bases."""
    from runner.kb.index import manifest, names

    root = _root()
    known = names(root)
    if not known:
        out.print(_("no knowledge base yet: playbook kb add NAME FOLDER"), markup=False)
    for name in known:
        data = manifest(root, name)
        out.print(_("{name}: {chunks} passages from {files} files of {folder} ({how})").format(
            name=name, chunks=data["chunks"], files=len(data["files"]), folder=data["folder"], how=_how(data)),
            markup=False)


@kb_app.command("show")
def show(name: str) -> None:
    """A knowledge base's files, their passages, and what was skipped."""
    from runner.kb.index import manifest
    from runner.models.embed import configured

    data = _failing(lambda: manifest(_root(), name))
    out.print(_("{name}: {chunks} passages, from {folder}; searched with {how}").format(
        name=name, chunks=data["chunks"], folder=data["folder"], how=_how(data)), markup=False)
    if not data.get("dense") and configured(project_here().settings) is not None:
        out.print(_("  [models.embed] is set since it was indexed: playbook kb add {name} FOLDER adds the "
                    "vectors").format(name=name), markup=False)
    for file, entry in data["files"].items():
        out.print(_("  {file}: {chunks} passages").format(file=file, chunks=entry["chunks"]), markup=False)
    for file, why in data.get("skipped") or []:
        out.print(_("  {file}: skipped ({why})").format(file=file, why=why), markup=False)


@kb_app.command("search")
def search(name: str, question: str,
           k: Annotated[int, typer.Option("-k", min=1, max=50, help=_("passages at most"))] = 3) -> None:
    """The passages a kb.search step would get for a question."""
    import asyncio

    from runner.kb.index import KnowledgeBaseError, load, query_vector_for
    from runner.models.embed import EmbedError

    def find() -> Any:
        index = load(_root(), name)
        try:
            vector = asyncio.run(query_vector_for(index, name, question, project_here().settings))
        except EmbedError as exc:
            raise KnowledgeBaseError(str(exc)) from None
        return index.search(question, k, query_vector=vector)

    found = _failing(find)
    if not found:
        out.print(_("nothing relevant found"), markup=False)
    for passage in found:
        out.print(f"[bold]{escape(passage.cite)}[/]  ({passage.score:.2f})")
        out.print(passage.text, markup=False)
        out.print()


@kb_app.command("remove")
def remove(name: str) -> None:
    """Delete a knowledge base's index (its documents are left alone)."""
    from runner.kb.index import remove as remove_kb

    _failing(lambda: remove_kb(_root(), name))
    out.print(_("removed kb '{name}'").format(name=name), markup=False)
