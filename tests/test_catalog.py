"""The message catalog: every message the code asks for is in zh_CN and en, the compiled files are current, and
the CLI's user-facing sentences go through it (no literal English or Chinese sentence printed or raised past it)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, cli

# every module whose printed, raised and help sentences a user reads goes through the catalog; runner.testing (the
# test doubles, for playbook authors' tests and ours) speaks English
CATALOGUED = [path for path in [*sorted((ROOT / "runner").rglob("*.py")), *sorted((ROOT / "tools").glob("*.py"))]
              if "testing" not in path.relative_to(ROOT).parts]
OUTPUT_CALLS = {"print", "echo", "secho", "Exit", "BadParameter", "Option", "Argument", "Typer", "add_row",
                "Table"}
# a bug of ours, not said to users; Python's own protocol (AttributeError); Jinja's parser error that plain_syntax
# rewrites from its English
INTERNAL = {"RuntimeError", "AssertionError", "TypeError", "NotImplementedError", "AttributeError",
            "TemplateSyntaxError"}
SENTENCE = re.compile(r"[A-Za-z]{2,}[\s·,;:()]+[A-Za-z]{2,}|[\u4e00-\u9fff]")  # two words, or any Chinese
MARKUP = re.compile(r"\[/?[a-z ]*\]")  # rich's [bold yellow] … [/] say nothing themselves


def test_the_catalog_is_complete_and_compiled() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "catalog.py"), "--check"], capture_output=True,
                          text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr  # untranslated messages, or .po/.mo out of date


def _literals(node: ast.AST) -> list[str]:
    """The sentence-like literals an argument holds, outside `_()` / `N_()`."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("_", "N_", "ngettext"):
        return []
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value] if SENTENCE.search(MARKUP.sub("", node.value)) else []
    found: list[str] = []
    for child in ast.iter_child_nodes(node):
        found += _literals(child)
    return found


def _called(node: ast.Call) -> str:
    return node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")


def test_no_user_facing_sentence_outside_the_catalog() -> None:
    problems = []
    for path in CATALOGUED:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr) and any(  # Babel cannot see a message inside an f-string
                    isinstance(n, ast.Call) and _called(n) in ("_", "N_") for n in ast.walk(node)):
                problems.append(f"{path.name}:{node.lineno}: _() inside an f-string")
            raised = isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and \
                _called(node.exc) not in INTERNAL
            if raised or (isinstance(node, ast.Call) and _called(node) in OUTPUT_CALLS):
                target = node.exc if raised else node  # type: ignore[union-attr]
                args = [*target.args, *(k.value for k in target.keywords)] if isinstance(target, ast.Call) else []
                for arg in args:
                    problems += [f"{path.name}:{node.lineno}: {text[:60]!r}" for text in _literals(arg)]
    assert problems == []


def test_no_module_that_translates_assigns_to_the_underscore() -> None:
    """`_, x = …` in a module that imports `_` from runner.i18n shadows gettext: the next `_()` in that function
    fails with "'tuple' is not callable" — on an error path, where a user meets it."""
    offenders = []
    for path in [*sorted((ROOT / "runner").rglob("*.py")), *sorted((ROOT / "tools").glob("*.py"))]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imports_it = any(isinstance(n, ast.ImportFrom) and n.module == "runner.i18n" and
                         any(a.name == "_" for a in n.names) for n in tree.body)
        offenders += [f"{path.relative_to(ROOT)}:{n.lineno}" for n in ast.walk(tree) if imports_it and
                      isinstance(n, ast.Name) and n.id == "_" and isinstance(n.ctx, ast.Store)]
    assert offenders == []


def test_every_message_is_formatted_with_exactly_its_placeholders() -> None:
    """`_("… {name} …").format(nmae=…)` raises KeyError — on an error path, where a user meets it; a value given
    and never placed is a message that lost what it meant to say."""
    import string

    problems = []
    for path in CATALOGUED:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"
                    and isinstance(node.func.value, ast.Call) and _called(node.func.value) == "_"
                    and node.func.value.args and isinstance(node.func.value.args[0], ast.Constant)):
                continue
            if node.args or any(k.arg is None for k in node.keywords):
                continue  # positional or **values: not checked here
            wanted = {name for _t, name, _s, _c in string.Formatter().parse(str(node.func.value.args[0].value))
                      if name}
            given = {k.arg for k in node.keywords}
            if {w.split(".")[0].split("[")[0] for w in wanted} != given:
                problems.append(f"{path.relative_to(ROOT)}:{node.lineno}: wants {sorted(wanted)}, "
                                f"given {sorted(given)}")
    assert problems == []


def test_a_command_speaks_the_language_of_ui_language_then_the_locale(tmp_path: Path) -> None:
    (tmp_path / "playbook.toml").write_text('[ui]\nlanguage = "en"\n', encoding="utf-8")
    english = cli("runs", "list", cwd=tmp_path, env={"LANGUAGE": "zh_CN"})
    assert english.returncode == 0 and "No runs under" in english.stdout  # playbook.toml beats the locale
    (tmp_path / "playbook.toml").write_text("", encoding="utf-8")
    chinese = cli("runs", "list", cwd=tmp_path, env={"LANGUAGE": "", "LANG": "C.UTF-8"})
    assert "还没有运行记录" in chinese.stdout  # no language anywhere: zh_CN
    by_locale = cli("runs", "--help", cwd=tmp_path, env={"LANGUAGE": "", "LANG": "en_US.UTF-8"})
    assert "List and inspect runs" in by_locale.stdout and "Usage: " in by_locale.stdout
    help_zh = cli("runs", "--help", cwd=tmp_path)
    assert "列出和查看运行" in help_zh.stdout and "用法：" in help_zh.stdout and "显示本帮助并退出" in help_zh.stdout
    wrong = cli("run", "--nope", cwd=tmp_path)
    assert wrong.returncode == 2 and "没有选项 --nope" in wrong.stderr
