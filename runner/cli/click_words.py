"""typer's own words in the user's language. typer (0.29) carries its own copy of click whose usage line, help
option and usage errors are fixed English, not gettext calls; they all reach the terminal through typer's rich
`highlighter` and the help option's `help`, so those two are where the catalog is applied."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from runner.i18n import _

# click's fixed sentences, each with the catalog message that says it (named groups fill its fields)
_ERRORS: list[tuple[re.Pattern[str], Callable[[], str]]] = [
    (re.compile(r"^No such option: (?P<name>\S+) \(Possible options: (?P<choices>.+)\)$"),
     lambda: _("No such option: {name} (possible options: {choices})")),
    (re.compile(r"^No such option: (?P<name>\S+)$"), lambda: _("No such option: {name}")),
    (re.compile(r"^No such command '(?P<name>.+)'\.$"), lambda: _("No such command '{name}'.")),
    (re.compile(r"^Missing argument '(?P<name>.+)'\.$"), lambda: _("Missing argument '{name}'.")),
    (re.compile(r"^Missing option '(?P<name>.+)'\.$"), lambda: _("Missing option '{name}'.")),
    (re.compile(r"^Missing command\.$"), lambda: _("Missing command.")),
    (re.compile(r"^Option '(?P<name>.+)' requires an argument\.$"),
     lambda: _("Option '{name}' requires an argument.")),
    (re.compile(r"^Option '(?P<name>.+)' does not take a value\.$"),
     lambda: _("Option '{name}' does not take a value.")),
    (re.compile(r"^Got unexpected extra arguments? \((?P<args>.+)\)$"),
     lambda: _("Got unexpected extra arguments ({args})")),
    (re.compile(r"^Invalid value for (?P<hint>.+?): (?:.+ is not a valid|Input should be a valid) "
                r"(?P<kind>integer|float|number|boolean)\b.*$", re.S),  # click's words, or pydantic's
     lambda: _("{hint} should be a {kind}.")),
    (re.compile(r"^Invalid value for (?P<hint>.+?): (?P<message>.+)$", re.S),
     lambda: _("Invalid value for {hint}: {message}")),
]
_KINDS = {"integer": lambda: _("whole number"), "float": lambda: _("number"), "number": lambda: _("number"),
          "boolean": lambda: _("yes/no value")}
_USAGE = re.compile(r"^Usage: ")


def translated(text: str) -> str:
    """A usage line or a usage error of typer's click, in the user's language; anything else unchanged."""
    if _USAGE.match(text):
        return _("Usage: ") + text[len("Usage: "):]
    for pattern, message in _ERRORS:
        if found := pattern.match(text):
            fields = found.groupdict()
            if "kind" in fields:
                fields["kind"] = _KINDS[fields["kind"]]()
            return message().format(**fields)
    return text


def install() -> None:
    from typer import _click, rich_utils

    for name, word in (("DEPRECATED_STRING", _("(deprecated) ")), ("DEFAULT_STRING", _("[default: {}]")),
                       ("ENVVAR_STRING", _("[env var: {}]")), ("REQUIRED_LONG_STRING", _("[required]")),
                       ("ARGUMENTS_PANEL_TITLE", _("Arguments")), ("OPTIONS_PANEL_TITLE", _("Options")),
                       ("COMMANDS_PANEL_TITLE", _("Commands")), ("ERRORS_PANEL_TITLE", _("Error")),
                       ("ABORTED_TEXT", _("Aborted.")),
                       ("RICH_HELP", _("Try [blue]'{command_path} {help_option}'[/] for help."))):
        setattr(rich_utils, name, word)  # looked up once, when typer was imported: set again in our words

    class Translating:
        def __init__(self, highlighter: Any) -> None:
            self.highlighter = highlighter

        def __call__(self, text: Any) -> Any:
            return self.highlighter(translated(text) if isinstance(text, str) else text)

    if not isinstance(rich_utils.highlighter, Translating):
        rich_utils.highlighter = Translating(rich_utils.highlighter)  # type: ignore[assignment]
    original = _click.core.Command.get_help_option
    if getattr(original, "translated", False):
        return

    def get_help_option(self: Any, ctx: Any) -> Any:
        option = original(self, ctx)
        if option is not None:
            option.help = _("Show this message and exit.")
        return option

    get_help_option.translated = True  # type: ignore[attr-defined]
    _click.core.Command.get_help_option = get_help_option  # type: ignore[method-assign]
