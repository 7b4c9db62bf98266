"""The message catalog: every sentence a person reads goes through `_()` and is looked up in the catalog of the
user's language (gettext `.mo` files under `runner/locale/`, made from the `.po` files by
`python scripts/catalog.py`).

The language: `[ui] language` in the project's playbook.toml, else the locale (LANGUAGE, LC_ALL, LC_MESSAGES,
LANG), else zh_CN. The source strings are English; zh_CN and en are both complete catalogs (a test checks).
typer's own words (Usage, Options, "Missing argument") come from the same catalog: runner/cli/click_words.py.

Why gettext (stdlib) at run time and Babel only to extract and compile: looking a string up costs a dict
lookup and no import beyond the standard library, so `playbook --help` stays cheap; Babel is the maintained
tool for the catalog files themselves (extraction, `.po` merge, `.mo` compile).
"""

from __future__ import annotations

import gettext
import os
import sys
import tomllib
from pathlib import Path

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "playbook"
LANGUAGES = ("zh_CN", "en")
DEFAULT = "zh_CN"

_chosen: str | None = None
_catalogs: dict[str, gettext.NullTranslations] = {}


def _(message: str) -> str:
    """The message in the user's language (the English source when the catalog lacks it)."""
    return catalog().gettext(message)


def N_(message: str) -> str:
    """Marks a message for the catalog where it is defined (a table of words) and looked up later, with `_()`."""
    return message


def ngettext(singular: str, plural: str, n: int) -> str:
    return catalog().ngettext(singular, plural, n)


def catalog(language: str | None = None) -> gettext.NullTranslations:
    code = language or current()
    if code not in _catalogs:
        _catalogs[code] = gettext.translation(DOMAIN, LOCALE_DIR, languages=[code], fallback=True)
    return _catalogs[code]


def current() -> str:
    global _chosen
    if _chosen is None:
        _chosen = configured() or from_locale() or DEFAULT
    return _chosen


def use(language: str | None) -> None:
    """Switch the language of this process (None: decide again from playbook.toml and the locale)."""
    global _chosen
    _chosen = normalized(language) if language else None


def normalized(code: str) -> str | None:
    """'zh_CN.UTF-8', 'zh-cn', 'zh' → 'zh_CN'; 'en_US' → 'en'; anything else → None."""
    base = code.split(".")[0].split("@")[0].replace("-", "_").lower()
    if base.startswith("zh"):
        return "zh_CN"
    if base == "en" or base.startswith("en_"):
        return "en"
    return None


def configured() -> str | None:
    """`[ui] language` of the project this command works on (read early: typer's help is built at import)."""
    folder = os.environ.get("PLAYBOOK_PROJECT")
    argv = sys.argv[1:]
    for i, arg in enumerate(argv):
        if arg == "--project" and i + 1 < len(argv):
            folder = argv[i + 1]
        elif arg.startswith("--project="):
            folder = arg.split("=", 1)[1]
    path = Path(folder or ".") / "playbook.toml"
    try:
        with path.open("rb") as fh:
            ui = tomllib.load(fh).get("ui")
    except (OSError, tomllib.TOMLDecodeError):  # no file, or a broken one: its own error comes later, in words
        return None
    return normalized(str(ui.get("language") or "")) if isinstance(ui, dict) else None


def from_locale() -> str | None:
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        for code in os.environ.get(name, "").split(":"):
            if code and (found := normalized(code)):
                return found
    return None


__all__ = ["DEFAULT", "LANGUAGES", "N_", "_", "catalog", "current", "ngettext", "use"]
