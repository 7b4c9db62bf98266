"""Keep the message catalog in step with the code: extract every `_()` / `N_()` / `ngettext()` message from runner/
and tools/ (and the docstrings of CLI commands, which typer shows as their help, and the `_()` of the web pages'
templates), merge them into
runner/locale/{zh_CN,en}/LC_MESSAGES/playbook.po (translations kept; an English catalog's new entry is its
source text), drop the messages no longer used, and compile the .mo files gettext reads.

    python scripts/catalog.py          update the .po and .mo files, list the zh_CN entries still untranslated
    python scripts/catalog.py --check  change nothing; exit 1 if anything is missing or out of date

Babel is a development dependency only: at run time the standard library's gettext reads the .mo files.
"""

from __future__ import annotations

import ast
import inspect
import io
import string
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "runner" / "locale"
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}
LANGUAGES = ("zh_CN", "en")
STAMP = datetime(2026, 12, 3)  # fixed, so an unchanged catalog compiles to the same bytes
def sources() -> Iterator[Path]:
    for folder in ("runner", "tools"):
        yield from sorted((ROOT / folder).rglob("*.py"))


def command_docstrings(path: Path) -> list[str]:
    """The docstrings of a CLI module's commands (`@app.command()`, `@x.callback()`): typer shows them as help."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef) and (doc := ast.get_docstring(node)) and any(
                isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr in ("command", "callback")
                for d in node.decorator_list):
            found.append(inspect.cleandoc(doc))
    return found


def tool_texts(path: Path) -> list[str]:
    """What `playbook tools` shows of a tool module: each `@tool` function's docstring (the tool's description)
    and each `Field(description=…)` (an argument's or a result field's)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef) and (doc := ast.get_docstring(node)) and any(
                isinstance(d, ast.Call) and getattr(d.func, "id", "") == "tool" for d in node.decorator_list):
            found.append(doc.split("\n")[0])  # the registry keeps the docstring's first line
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Field":
            found += [k.value.value for k in node.keywords if k.arg == "description" and
                      isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)]
    return found


def extracted() -> dict[str | tuple[str, str], None]:
    """Every message in the code, in a stable order (a dict as an ordered set)."""
    found: dict[str | tuple[str, str], None] = {}
    for path in sources():
        for _line, message, _comments, _context in extract_from_file("python", str(path), keywords=KEYWORDS):
            found.setdefault(message if isinstance(message, str) else tuple(message[:2]), None)  # type: ignore[arg-type]
    for path in sorted((ROOT / "runner" / "cli").glob("*.py")):
        for doc in command_docstrings(path):
            found.setdefault(doc, None)
    for path in sorted((ROOT / "tools").glob("*.py")):
        for text in tool_texts(path):
            found.setdefault(text, None)
    for path in sorted((ROOT / "runner" / "server" / "templates").iterdir()):  # the pages: `_()` and `_html()`
        for _line, message, _comments, _context in extract_from_file(
                "jinja2.ext:babel_extract", str(path), keywords={"_": None, "_html": None},
                options={"trim_blocks": "true", "lstrip_blocks": "true"}):
            found.setdefault(message, None)  # type: ignore[arg-type]
    return found


def po_path(language: str) -> Path:
    return LOCALE / language / "LC_MESSAGES" / "playbook.po"


def existing(language: str) -> Catalog:
    path = po_path(language)
    if not path.exists():
        return Catalog(locale=language, domain="playbook")
    with path.open("rb") as fh:
        return read_po(fh, locale=language)


def merged(language: str, messages: dict[str | tuple[str, str], None]) -> tuple[Catalog, list[str]]:
    """The language's catalog holding exactly `messages`, translations kept; and the messages untranslated."""
    old = existing(language)
    new = Catalog(locale=language, domain="playbook", project="playbook runner", version="", fuzzy=False,
                  creation_date=STAMP, revision_date=STAMP, charset="utf-8")
    missing = []
    for message in messages:
        key = message[0] if isinstance(message, tuple) else message
        before = old.get(key)
        translation = before.string if before is not None else None
        if not translation or (isinstance(translation, tuple) and not all(translation)):
            if language == "en":  # the source text is English
                translation = message
            else:
                translation = ("", "") if isinstance(message, tuple) else ""
                missing.append(key)
        if isinstance(message, tuple) and language == "zh_CN" and isinstance(translation, tuple):
            translation = translation[:1]  # Chinese has one plural form
        new.add(message, translation)
    return new, missing


def po_bytes(catalog: Catalog) -> bytes:
    buffer = io.BytesIO()
    write_po(buffer, catalog, no_location=True, sort_output=True, width=120)
    return buffer.getvalue()


def mo_bytes(catalog: Catalog) -> bytes:
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    return buffer.getvalue()


def fields(text: str) -> set[str]:
    """The `{name}` placeholders of a message (what `.format()` fills); braces doubled to be literal are not."""
    try:
        return {name for _text, name, _spec, _conv in string.Formatter().parse(text) if name is not None}
    except ValueError:  # not a format string at all (a message passed without .format)
        return set()


def wrong_placeholders(language: str, catalog: Catalog) -> list[str]:
    """Translations whose placeholders differ from the source's: `.format()` would raise or drop a value."""
    found = []
    for message in catalog:
        if not message.id or not message.string:
            continue
        source = message.id[0] if isinstance(message.id, tuple) else message.id
        for text in message.string if isinstance(message.string, tuple) else (message.string,):
            if text and fields(text) != fields(source):
                found.append(f"{language}: placeholders differ: {source[:60]!r} → {text[:60]!r}")
    return found


def main(check: bool) -> int:
    messages = extracted()
    problems = []
    for language in LANGUAGES:
        catalog, missing = merged(language, messages)
        po, mo = po_path(language), po_path(language).with_suffix(".mo")
        problems += [f"{language}: untranslated: {m!r}" for m in missing]
        problems += wrong_placeholders(language, catalog)
        wanted_po, wanted_mo = po_bytes(catalog), mo_bytes(catalog)
        for path, wanted in ((po, wanted_po), (mo, wanted_mo)):
            if path.exists() and path.read_bytes() == wanted:
                continue
            if check:
                problems.append(f"{path.relative_to(ROOT)} is out of date: run python scripts/catalog.py")
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(wanted)
    for problem in problems:
        print(problem)
    print(f"{len(messages)} messages; {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main("--check" in sys.argv[1:]))
